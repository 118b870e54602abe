/** `outrig port-controller`: 802.1X on a switch's ports for dedicated host clusters (runs on the switch). */
import { Option, type Command } from 'commander';
import { join } from 'node:path';
import { createLogger } from '../../common/log.ts';
import { dataRoot } from '../../common/paths.ts';
import { generateKeyPair } from '../../pki/index.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { collect, parseIntStrict } from '../parse.ts';
import { untilSignal } from '../signals.ts';

export function portControllerCommand(program: Command): void {
  program
    .command('port-controller')
    .description("authenticate switch ports with 802.1X (hostapd + FreeRADIUS) and put each in the network its host's principal certificate names")
    .option('--port <ifname>', 'a switch port facing a host (repeatable)', collect, [])
    .option('--state <dir>', 'where configuration, keys and logs go (default: $OUTRIG_DATA/port-controller)')
    .option('--name <name>', "the RADIUS server's name in its certificate", 'outrig-switch')
    .addOption(new Option('--radius-port <port>', 'UDP port of the RADIUS server on 127.0.0.1').default(18120).argParser(parseIntStrict('--radius-port')))
    .addOption(new Option('--crl-poll <ms>', 'how often the revocation list is fetched').default(2000).argParser(parseIntStrict('--crl-poll')))
    .action(async (o: { port: string[]; state?: string; name: string; radiusPort: number; crlPoll: number }, cmd: Command) => {
      if (!o.port.length) throw new CliError('give at least one --port', 2);
      const { api } = contextOf(cmd);
      const log = createLogger('port-controller');
      // The RADIUS key is made here and never leaves this machine; the cluster CA certifies it.
      const pair = generateKeyPair();
      const issued = await api.post<{ certificate: string; ca: string }>('/v1/port-authenticator-certificates', { name: o.name, publicKey: pair.publicKey });
      const fetchCrl = async () => {
        const r = await api.raw('GET', '/v1/pki/crl');
        if (r.status !== 200) throw new Error(`GET /v1/pki/crl: HTTP ${r.status}`);
        return r.text();
      };
      const { PortController } = await import('../../portauth/index.ts');
      const pc = new PortController({
        ports: o.port,
        stateDir: o.state ?? join(dataRoot(), 'port-controller'),
        caPem: issued.ca,
        fetchCrl,
        certPem: issued.certificate,
        keyPem: pair.privateKey,
        authPort: o.radiusPort,
        crlPollMs: o.crlPoll,
        log,
        onChange: (p) => process.stdout.write(`port ${p.port}: ${p.segment === undefined ? 'no network' : `network vnet-${p.segment}`} (${p.reason})\n`),
      });
      await pc.start();
      process.stdout.write(`outrig port-controller ready on ${o.port.join(', ')}\n`);
      await untilSignal(() => pc.close());
    });
}
