/** The `outrig` command line. */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../common/version.ts';
import { daemonCommands } from './commands/daemons.ts';
import { diskCommands } from './commands/disk.ts';
import { hostCommands } from './commands/host.ts';
import { imageCommands } from './commands/image.ts';
import { instanceCommands } from './commands/instance.ts';
import { tenantCommands } from './commands/tenant.ts';
import { upCommand } from './commands/up.ts';
import { CliError } from './errors.ts';

export function buildProgram(): Command {
  const program = new Command('outrig')
    .description('Outrig: a private cloud for ordinary Linux servers')
    .version(VERSION)
    .option('--url <url>', 'API URL (default: $OUTRIG_URL or http://127.0.0.1:7440)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .exitOverride();
  upCommand(program);
  daemonCommands(program);
  hostCommands(program);
  instanceCommands(program);
  imageCommands(program);
  tenantCommands(program);
  diskCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
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
