/** The `outrig` command line. */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../common/version.ts';
import { CliError } from './errors.ts';

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

export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('outrig')
    .description('Outrig: a private cloud for ordinary Linux servers')
    .version(VERSION)
    .option('--url <url>', 'API URL (default: $OUTRIG_URL or https://127.0.0.1:7440)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .exitOverride();
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

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are not errors; usage mistakes exit 2 like other Unix tools.
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (e instanceof CliError) {
      process.stderr.write(`outrig: ${e.message}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    const err = e as Error;
    process.stderr.write(`outrig: ${(process.env.OUTRIG_DEBUG ? err.stack : err.message) ?? String(e)}\n`);
    process.exitCode = 1;
  }
}
