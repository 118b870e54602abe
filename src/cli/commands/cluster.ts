/** `outrig cluster`: the cluster's identity (CA fingerprint) and the rules that admit enrolling hosts. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { ControllerInfo } from '../../discovery/index.ts';
import { generateKeyPair } from '../../pki/index.ts';
import { ENROLL_RULE_KINDS, ruleAuthentication, type EnrollmentRule } from '../../model/trust.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';
import { collect, parseDuration, parseIntStrict, parseLabels } from '../parse.ts';

function describeRule(r: EnrollmentRule): string {
  switch (r.spec.kind) {
    case 'token':
      return 'bootstrap token';
    case 'host-ids':
      return `host ids: ${(r.spec.hostIds ?? []).join(',')}`;
    case 'labels':
      return `labels: ${Object.entries(r.spec.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}`;
    case 'keys':
      return `host keys: ${r.spec.keyFingerprints?.length ?? 0}`;
  }
}

/** How a rule authenticates, said so that a rule admitting on claims alone cannot be missed. */
function describeAuth(r: EnrollmentRule): string {
  const a = ruleAuthentication(r.spec);
  if (a !== 'none') return a;
  return r.spec.unauthenticated ? 'NONE (unauthenticated: anyone can claim)' : 'none: admits nobody (add a token or keys)';
}

export function clusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('the cluster: its CA and who may join');

  cluster
    .command('info')
    .description('show this controller and the cluster CA fingerprint (what agents pin with --ca-fingerprint)')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const c = await api.get<ControllerInfo & { caFingerprint: string; caCertificate: string }>('/v1/cluster');
      if (json) return printJson(c);
      printDetails({
        cluster: c.cluster,
        controller: `${c.name} (${c.id})`,
        version: c.version,
        endpoint: c.endpoint,
        features: c.features.join(', '),
        hosts: c.hosts,
        caFingerprint: c.caFingerprint,
      });
    });

  const rule = cluster.command('enroll-rule').description('rules that admit enrolling hosts without an operator');
  rule
    .command('add <name>')
    .description(
      'add a rule: a one-time bootstrap token (printed once), host keys registered in advance, or host ids / labels bound to a token (--with-token) or keys (--key-fingerprint)',
    )
    .addOption(new Option('--kind <kind>', 'what the rule matches').choices([...ENROLL_RULE_KINDS]).makeOptionMandatory())
    .option('--host-id <id>', 'host id to admit (kind host-ids; repeatable)', collect, [])
    .option('--label <key=value>', 'label the host must announce (kind labels; repeatable)', collect, [])
    .option(
      '--key-fingerprint <sha256>',
      "fingerprint of a host's key, from 'outrig agent --print-identity' on it (kind keys, or to bind host-ids / labels; repeatable)",
      collect,
      [],
    )
    .option('--with-token', 'kinds host-ids and labels: hosts must also present a bootstrap token (printed once)')
    .option('--allow-unauthenticated', 'kinds host-ids and labels: admit on what hosts claim alone, which anyone on the network can claim')
    .option('--uses <n>', 'how many hosts the rule admits (token: 1 by default)', parseIntStrict('--uses'))
    .option('--expires-in <duration>', 'the rule stops admitting after this long (e.g. 24h)', parseDuration)
    .action(
      async (
        name: string,
        o: {
          kind: EnrollmentRule['spec']['kind'];
          hostId: string[];
          label: string[];
          keyFingerprint: string[];
          withToken?: boolean;
          allowUnauthenticated?: boolean;
          uses?: number;
          expiresIn?: number;
        },
        cmd: Command,
      ) => {
        const { api, json } = contextOf(cmd);
        if (o.kind === 'host-ids' && !o.hostId.length) throw new CliError('--kind host-ids needs at least one --host-id', 2);
        if (o.kind === 'labels' && !o.label.length) throw new CliError('--kind labels needs at least one --label', 2);
        if (o.kind === 'keys' && !o.keyFingerprint.length) throw new CliError('--kind keys needs at least one --key-fingerprint', 2);
        if (o.kind !== 'host-ids' && o.hostId.length) throw new CliError('--host-id only goes with --kind host-ids', 2);
        if (o.kind !== 'labels' && o.label.length) throw new CliError('--label only goes with --kind labels', 2);
        const claims = o.kind === 'host-ids' || o.kind === 'labels';
        if (!claims && (o.withToken || o.allowUnauthenticated))
          throw new CliError('--with-token and --allow-unauthenticated only go with --kind host-ids or labels', 2);
        if (claims && !o.withToken && !o.keyFingerprint.length && !o.allowUnauthenticated)
          throw new CliError(
            `a ${o.kind} rule admits on what hosts claim, and anyone on the network can claim any ${o.kind === 'labels' ? 'labels' : 'host id'}: ` +
              'add --with-token (hosts present a bootstrap token) or --key-fingerprint (their keys, registered in advance), or --allow-unauthenticated to admit them anyway',
            2,
          );
        const r = await api.post<{ rule: EnrollmentRule; token?: string }>('/v1/enrollment-rules', {
          name,
          kind: o.kind,
          maxUses: o.uses,
          hostIds: o.hostId.length ? o.hostId : undefined,
          labels: parseLabels(o.label),
          keyFingerprints: o.keyFingerprint.length ? o.keyFingerprint : undefined,
          withToken: o.withToken,
          allowUnauthenticated: o.allowUnauthenticated,
          expiresAt: o.expiresIn ? new Date(Date.now() + o.expiresIn).toISOString() : undefined,
        });
        if (json) return printJson(r);
        process.stdout.write(`enrollment rule ${r.rule.name} added (${describeRule(r.rule)}; authenticated by ${describeAuth(r.rule)})\n`);
        if (r.token) {
          const { caFingerprint } = await api.get<{ caFingerprint: string }>('/v1/cluster');
          process.stdout.write(
            `bootstrap token (shown only now): ${r.token}\n` +
              'put it in a file only the agent can read (mode 0600) and start the agent with:\n' +
              `  outrig agent --discover --ca-fingerprint ${caFingerprint} --bootstrap-token-file FILE\n` +
              '(or set OUTRIG_BOOTSTRAP_TOKEN in its environment)\n',
          );
        }
      },
    );
  rule
    .command('list')
    .description('list enrollment rules (AUTH says what a host must prove; NONE means anyone can claim what the rule matches)')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: EnrollmentRule[] }>('/v1/enrollment-rules');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'KIND', 'MATCHES', 'USES', 'PHASE', 'AUTH', 'EXPIRES', 'AGE'],
        items.map((r) => [
          r.name,
          r.spec.kind,
          describeRule(r),
          `${r.status.uses}/${r.spec.maxUses ?? (r.spec.kind === 'token' ? 1 : '∞')}`,
          r.status.phase,
          describeAuth(r),
          r.spec.expiresAt ?? '-',
          age(r.createdAt),
        ]),
      );
    });
  rule
    .command('show <name>')
    .description('show a rule: what it matches, how it authenticates hosts, whom it admitted')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const r = await api.get<EnrollmentRule>(`/v1/enrollment-rules/${encodeURIComponent(ref)}`);
      if (json) return printJson(r);
      printDetails({
        name: r.name,
        kind: r.spec.kind,
        matches: describeRule(r),
        hostIds: r.spec.hostIds,
        labels: r.spec.labels,
        keyFingerprints: r.spec.keyFingerprints,
        authentication: describeAuth(r),
        uses: `${r.status.uses} of ${r.spec.maxUses ?? (r.spec.kind === 'token' ? 1 : 'unlimited')}`,
        phase: r.status.phase,
        expires: r.spec.expiresAt,
        admitted: r.status.admitted,
      });
    });
  rule
    .command('remove <name>')
    .description('remove a rule (hosts it admitted stay trusted)')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      await api.delete(`/v1/enrollment-rules/${encodeURIComponent(ref)}`);
      if (json) return printJson({ name: ref, removed: true });
      process.stdout.write(`enrollment rule ${ref} removed\n`);
    });

  cluster
    .command('operator-cert <name>')
    .description('issue an operator client certificate (a key is made here and never leaves this machine)')
    .requiredOption('--out-dir <dir>', 'where to write operator.key (0600), operator.crt and ca.crt')
    .action(async (name: string, o: { outDir: string }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const pair = generateKeyPair();
      const r = await api.post<{ certificate: string; ca: string }>('/v1/operator-certificates', { name, publicKey: pair.publicKey });
      await mkdir(o.outDir, { recursive: true, mode: 0o700 });
      const files = { key: join(o.outDir, 'operator.key'), cert: join(o.outDir, 'operator.crt'), ca: join(o.outDir, 'ca.crt') };
      await writeFile(files.key, pair.privateKey, { mode: 0o600 });
      await writeFile(files.cert, r.certificate);
      await writeFile(files.ca, r.ca);
      if (json) return printJson(files);
      process.stdout.write(
        `operator certificate for ${name} written to ${o.outDir}\nuse it with:  export OUTRIG_CERT=${files.cert} OUTRIG_KEY=${files.key} OUTRIG_CA=${files.ca}\n`,
      );
    });
}
