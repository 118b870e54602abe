/** `outrig controller` and `outrig agent`: the long-running processes. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { apiUrl, dataRoot, DEFAULT_API_HOST, DEFAULT_API_PORT } from '../../common/paths.ts';
import { readSecret } from '../../common/secrets.ts';
import { CliError } from '../errors.ts';
import { parseIntStrict, parseListen } from '../parse.ts';

/** Runs until SIGINT/SIGTERM, then calls `stop` once. */
export function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const on = (sig: string) => {
      if (stopping) {
        process.stderr.write(`\n${sig} again: exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      void stop().finally(resolve);
    };
    process.on('SIGINT', () => on('SIGINT'));
    process.on('SIGTERM', () => on('SIGTERM'));
  });
}

export function daemonCommands(program: Command): void {
  program
    .command('controller')
    .description('run the controller: API, reconcilers and the agent stream endpoint')
    .option('--listen <host:port>', 'API address', `${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`)
    .option('--data <dir>', 'controller data directory (default: $OUTRIG_DATA/controller)')
    .addOption(new Option('--heartbeat-ms <ms>', 'agent heartbeat period').default(2000).argParser(parseIntStrict('--heartbeat-ms')))
    .addOption(new Option('--lost-after-ms <ms>', 'a host is lost after this long without heartbeats (default 5 heartbeats)').argParser(parseIntStrict('--lost-after-ms')))
    .action(async (o: { listen: string; data?: string; heartbeatMs: number; lostAfterMs?: number }) => {
      const { host, port } = parseListen(o.listen, DEFAULT_API_HOST);
      const { startController } = await import('../../controller/index.ts');
      const c = await startController({ dataDir: o.data ?? join(dataRoot(), 'controller'), host, port, heartbeatMs: o.heartbeatMs, lostAfterMs: o.lostAfterMs });
      process.stderr.write(`outrig controller listening on ${c.url}\nagents join with the token in ${c.joinTokenFile}\n`);
      await untilSignal(() => c.close());
    });

  program
    .command('agent')
    .description('run the host agent: registers this server and runs its instances')
    .option('--controller <url>', 'controller API URL (default: $OUTRIG_URL or http://127.0.0.1:7440)')
    .option('--token-file <file>', 'join token file (default: $OUTRIG_JOIN_TOKEN, else the local controller\'s)')
    .option('--name <name>', 'host name to register as (default: the hostname)')
    .option('--data <dir>', 'agent data directory (default: $OUTRIG_DATA/agent)')
    .addOption(new Option('--stop-timeout <seconds>', 'how long a stop waits for the guest before forcing it').default(30).argParser(parseIntStrict('--stop-timeout')))
    .addOption(new Option('--accel <accel>', 'force an accelerator instead of probing').choices(['kvm', 'tcg']))
    .action(async (o: { controller?: string; tokenFile?: string; name?: string; data?: string; stopTimeout: number; accel?: 'kvm' | 'tcg' }) => {
      const localTokenFile = join(dataRoot(), 'controller', 'join-token');
      let token = process.env.OUTRIG_JOIN_TOKEN;
      if (o.tokenFile) token = await readSecret(o.tokenFile);
      else if (!token && existsSync(localTokenFile)) token = await readSecret(localTokenFile);
      if (!token) throw new CliError(`no join token: pass --token-file (the controller writes one to its data directory) or set OUTRIG_JOIN_TOKEN`, 2);
      const { startAgent } = await import('../../agent/index.ts');
      const a = await startAgent({
        dataDir: o.data ?? join(dataRoot(), 'agent'),
        controllerUrl: (o.controller ?? apiUrl()).replace(/\/+$/, ''),
        token,
        name: o.name,
        stopTimeoutMs: o.stopTimeout * 1000,
        accel: o.accel ?? (process.env.OUTRIG_ACCEL as 'kvm' | 'tcg' | undefined),
      });
      process.stderr.write(`outrig agent ${a.name} (${a.hostId}) started; accelerator ${a.kvm.usable ? 'kvm' : 'tcg'} (${a.kvm.reason})\n`);
      await untilSignal(() => a.close());
    });
}
