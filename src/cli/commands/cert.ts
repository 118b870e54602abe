/** `outrig cert`: every certificate the cluster CA issued, and revoking any of them. */
import { Option, type Command } from 'commander';
import type { Certificate } from '../../model/trust.ts';
import { contextOf } from '../context.ts';
import { age, printJson, printTable } from '../output.ts';

const PROFILES = ['host', 'server', 'operator', 'principal', 'authenticator'];

function state(c: Certificate): string {
  if (c.status.phase === 'revoked') return 'revoked';
  return Date.parse(c.spec.notAfter) < Date.now() ? 'expired' : 'valid';
}

export function certCommands(program: Command): void {
  const cert = program
    .command('cert')
    .description('certificates of the cluster CA: hosts, controllers and port authenticators (server), operators, instance principals');

  cert
    .command('list')
    .description('list certificates (newest last), with their state: valid, expired or revoked')
    .addOption(new Option('--profile <profile>', 'only this profile').choices(PROFILES))
    .option('--host <host-id>', 'only the certificates of this host')
    .option('--valid', 'only certificates that are neither revoked nor expired')
    .action(async (o: { profile?: string; host?: string; valid?: boolean }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const q = new URLSearchParams();
      if (o.profile) q.set('profile', o.profile);
      if (o.host) q.set('host', o.host);
      const all = (await api.get<{ items: Certificate[] }>(`/v1/certificates${q.size ? `?${q}` : ''}`)).items;
      const items = o.valid ? all.filter((c) => state(c) === 'valid') : all;
      if (json) return printJson(items);
      printTable(
        ['SERIAL', 'PROFILE', 'SUBJECT', 'HOST', 'STATE', 'EXPIRES', 'AGE'],
        items.map((c) => [c.name, c.spec.profile, c.spec.subject, c.spec.hostId ?? '-', state(c), c.spec.notAfter, age(c.createdAt)]),
      );
    });

  cert
    .command('revoke <serial-or-name>')
    .description(
      "revoke a certificate by serial, or every certificate issued to a name; it is refused from then on and listed in the CRL (to turn a host away for good use 'outrig host revoke': a host that keeps its key can enroll again)",
    )
    .addOption(new Option('--profile <profile>', 'which profile, when the name holds certificates of several').choices(PROFILES))
    .action(async (ref: string, o: { profile?: string }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const q = o.profile ? `?profile=${o.profile}` : '';
      const { items } = await api.post<{ items: Certificate[] }>(`/v1/certificates/${encodeURIComponent(ref)}/revoke${q}`);
      if (json) return printJson(items);
      for (const c of items) process.stdout.write(`certificate ${c.name} (${c.spec.profile}, ${c.spec.subject}) revoked\n`);
    });
}
