/** The `outrig` command line. */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../common/version.ts';
import { ApiRequestError } from './client.ts';
import { CliError, fileErrorText } from './errors.ts';

type Register = (program: Command) => void;

/**
 * Command groups, loaded on demand: `outrig disk serve` should not carry the controller's stack
 * in memory, and every command starts faster when it loads only its own modules.
 */
const GROUPS: Record<string, () => Promise<Register[]>> = {
  up: async () => [(await import('./commands/up.ts')).upCommand],
  controller: async () => [(await import('./commands/daemons.ts')).daemonCommands],
  agent: async () => [(await import('./commands/daemons.ts')).daemonCommands],
  host: async () => [(await import('./commands/host.ts')).hostCommands],
  cluster: async () => [(await import('./commands/cluster.ts')).clusterCommands],
  cert: async () => [(await import('./commands/cert.ts')).certCommands],
  instance: async () => [(await import('./commands/instance.ts')).instanceCommands],
  image: async () => [(await import('./commands/image.ts')).imageCommands],
  tenant: async () => [(await import('./commands/tenant.ts')).tenantCommands],
  memory: async () => [(await import('./commands/memory.ts')).memoryCommands],
  'host-cluster': async () => [(await import('./commands/host-cluster.ts')).hostClusterCommands],
  'port-controller': async () => [(await import('./commands/port-controller.ts')).portControllerCommand],
  network: async () => [(await import('./commands/network.ts')).networkCommands],
  volume: async () => [(await import('./commands/volume.ts')).volumeCommands],
  disk: async () => [(await import('./commands/disk.ts')).diskCommands],
  backup: async () => [(await import('./commands/backup.ts')).backupCommands],
  diskd: async () => [(await import('./commands/disk.ts')).diskdCommand],
};

async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('outrig')
    .description('Outrig: a private cloud for ordinary Linux servers')
    .version(VERSION)
    .option('--url <url>', 'API URL (default: $OUTRIG_URL or https://127.0.0.1:7440)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .exitOverride();
  // With --json a usage mistake is reported as JSON too (main), not as commander's text and help.
  if (wantsJson(argv)) program.configureOutput({ writeErr: () => undefined, outputError: () => undefined });
  const first = argv.slice(2).find((a) => !a.startsWith('-'));
  const wanted = first && GROUPS[first] ? [first] : Object.keys(GROUPS);
  const seen = new Set<Register>();
  for (const name of wanted) {
    for (const register of await GROUPS[name]!()) {
      if (seen.has(register)) continue;
      seen.add(register);
      register(program);
    }
  }
  return program;
}

/** Whether the command line asks for JSON (a global option: anywhere before a `--`). */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * How a failure is reported: one line on stderr, or with --json `{"error":{code,message,details}}`
 * on stdout, where the command's JSON would have gone (a program reads one JSON document either
 * way; the exit code says which). The exit code is the same in both.
 */
function report(e: unknown, json: boolean): number {
  let code = 'error';
  let message: string;
  let details: unknown;
  let exitCode = 1;
  if (e instanceof CommanderError) {
    code = 'usage';
    message = e.code === 'commander.help' ? 'a subcommand is needed (see --help)' : e.message.replace(/^error: /, '');
    exitCode = 2;
  } else if (e instanceof ApiRequestError) {
    ({ code, message, details, exitCode } = e);
  } else if (e instanceof CliError) {
    code = e.exitCode === 2 ? 'usage' : 'error';
    ({ message, exitCode } = e);
  } else {
    const err = e as Error;
    const file = fileErrorText(e);
    if (file) code = 'file';
    message = (process.env.OUTRIG_DEBUG ? err.stack : (file ?? err.message)) ?? String(e);
  }
  if (json) process.stdout.write(JSON.stringify({ error: { code, message, ...(details === undefined ? {} : { details }) } }, null, 2) + '\n');
  // commander printed its own usage error already (unless --json silenced it).
  else if (!(e instanceof CommanderError)) process.stderr.write(`outrig: ${message}\n`);
  return exitCode;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    // Help and version are not errors; usage mistakes exit 2 like other Unix tools.
    if (e instanceof CommanderError && e.exitCode === 0) {
      process.exitCode = 0;
      return;
    }
    process.exitCode = report(e, wantsJson(argv));
  }
}
