/** `outrig disk`: the disk engine's own tools, working on files directly (no controller needed). */
import { Option, type Command } from 'commander';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { printDetails, printJson, printTable } from '../output.ts';
import { untilSignal } from '../signals.ts';

/** "20G", "512M", "4096", "64K" -> bytes. */
export function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?B)?$/i.exec(v.trim());
  if (!m) throw new CliError(`invalid size '${v}' (examples: 20G, 512M, 64K)`, 2);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4, P: 1024 ** 5 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T' | 'P'];
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(`invalid size '${v}'`, 2);
  return n;
}

function human(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(x < 10 && i ? 1 : 0)} ${units[i]}`;
}

const cacheOption = () =>
  new Option('--cache <mode>', 'writeback: durable at flush; writethrough: every write durable before it completes')
    .choices(['writeback', 'writethrough'])
    .default('writeback');

export function diskCommands(program: Command): void {
  const disk = program.command('disk').description('Outrig disk files: create, inspect, check, serve over NBD');

  disk
    .command('create <file>')
    .description('create a thin disk file')
    .requiredOption('--size <size>', 'virtual size (e.g. 20G)', parseSize)
    .option('--block-size <size>', 'allocation block size, a power of two from 4K to 2M (default 64K)', parseSize)
    .option('--backing <file@snapshot>', 'make a clone: unwritten blocks read from that snapshot of another disk')
    .action(async (file: string, o: { size: number; blockSize?: number; backing?: string }, cmd: Command) => {
      const { json } = contextOf(cmd);
      const { DiskEngine } = await import('../../disk/index.ts');
      let backing: { path: string; snapshot: string } | undefined;
      if (o.backing) {
        const at = o.backing.lastIndexOf('@');
        if (at <= 0) throw new CliError('--backing takes FILE@SNAPSHOT', 2);
        backing = { path: o.backing.slice(0, at), snapshot: o.backing.slice(at + 1) };
      }
      const sb = DiskEngine.create(file, { size: o.size, blockSize: o.blockSize, backing });
      if (json) return printJson({ file, uuid: sb.uuid, virtualSize: sb.virtualSize, blockSize: sb.blockSize, journalSize: sb.journalSize });
      process.stdout.write(`created ${file}: ${human(sb.virtualSize)} virtual, ${human(sb.blockSize)} blocks, uuid ${sb.uuid}\n`);
    });

  disk
    .command('info <file>')
    .description('show a disk: size, space used, journal, snapshots')
    .action(async (file: string, _o, cmd: Command) => {
      const { json } = contextOf(cmd);
      const { DiskEngine } = await import('../../disk/index.ts');
      const e = await DiskEngine.open(file, { readOnly: true });
      const info = e.info();
      await e.close();
      if (json) return printJson(info);
      printDetails({
        file: info.path,
        uuid: info.uuid,
        virtualSize: `${human(info.virtualSize)} (${info.virtualSize} bytes)`,
        blockSize: human(info.blockSize),
        written: `${human(info.mappedBlocks * info.blockSize)} (${info.mappedBlocks} blocks)`,
        allocated: `${info.allocatedBlocks} blocks of ${info.dataAreaBlocks} in the data area`,
        fileSize: human(info.fileSize),
        journal: `${human(info.journal.used)} of ${human(info.journal.size)} in use, last record ${info.journal.lastLsn}`,
        backing: info.backing ? `${info.backing.path} snapshot ${info.backing.snapshotId}` : undefined,
        snapshots: info.snapshots.map((s) => ({ id: s.id, name: s.name, blocks: s.blocks, createdAt: s.createdAt })),
      });
    });

  disk
    .command('serve <file>')
    .description('serve a disk over NBD on a UNIX socket until interrupted')
    .requiredOption('--socket <path>', 'UNIX socket to listen on')
    .option('--name <export>', 'export name (default: the file name; "" also reaches it)')
    .addOption(cacheOption())
    .option('--read-only', 'refuse writes')
    .action(async (file: string, o: { socket: string; name?: string; cache: 'writeback' | 'writethrough'; readOnly?: boolean }) => {
      const { serveDisk } = await import('../../disk/index.ts');
      const s = await serveDisk({ file, socket: o.socket, name: o.name, cache: o.cache, readOnly: o.readOnly });
      process.stderr.write(`serving ${file} on ${o.socket} (export '${o.name ?? ''}' or default; cache ${o.cache})\n`);
      await untilSignal(() => s.close());
    });

  diskCheckCommand(disk);

  const snap = disk.command('snapshot').description('copy-on-write snapshots inside a disk file');
  snap
    .command('create <file> <name>')
    .description('snapshot the disk as it is now')
    .action(async (file: string, name: string, _o, cmd: Command) => {
      const { json } = contextOf(cmd);
      const { DiskEngine } = await import('../../disk/index.ts');
      const e = await DiskEngine.open(file);
      try {
        const s = await e.createSnapshot(name);
        if (json) printJson(s);
        else process.stdout.write(`snapshot ${s.name} (id ${s.id}) of ${file}\n`);
      } finally {
        await e.close();
      }
    });
  snap
    .command('list <file>')
    .description('list snapshots')
    .action(async (file: string, _o, cmd: Command) => {
      const { json } = contextOf(cmd);
      const { DiskEngine } = await import('../../disk/index.ts');
      const e = await DiskEngine.open(file, { readOnly: true });
      const list = e.snapshots();
      await e.close();
      if (json) return printJson(list);
      printTable(
        ['ID', 'NAME', 'BLOCKS', 'CREATED'],
        list.map((s) => [s.id, s.name, s.blocks, s.createdAt]),
      );
    });
  snap
    .command('delete <file> <snapshot>')
    .description('delete a snapshot (its clones must be deleted first)')
    .action(async (file: string, ref: string, _o, cmd: Command) => {
      const { json } = contextOf(cmd);
      const { DiskEngine } = await import('../../disk/index.ts');
      const e = await DiskEngine.open(file);
      try {
        await e.deleteSnapshot(ref);
      } finally {
        await e.close();
      }
      if (json) printJson({ file, snapshot: ref, deleted: true });
      else process.stdout.write(`snapshot ${ref} of ${file} deleted\n`);
    });
}

function diskCheckCommand(disk: Command): void {
  disk
    .command('check <file>')
    .description('check a disk file for inconsistencies, naming each with its location; exit 1 if any')
    .option('--repair', 'fix what can be fixed (bitmap, impossible map entries, a damaged superblock copy)')
    .action(async (file: string, o: { repair?: boolean }, cmd: Command) => {
      const { json } = contextOf(cmd);
      const { checkDisk } = await import('../../disk/index.ts');
      const r = await checkDisk(file, { repair: o.repair });
      if (json) printJson(r);
      else {
        for (const f of r.findings) {
          process.stdout.write(`${f.severity.toUpperCase().padEnd(7)} ${f.message}${f.fileOffset !== undefined ? ` [file offset ${f.fileOffset}]` : ''}\n`);
        }
        process.stdout.write(
          `${file}: ${r.clean ? 'clean' : `${r.errors} error(s)`}${r.warnings ? `, ${r.warnings} warning(s)` : ''}${r.repaired ? ' (after repair)' : ''}\n`,
        );
      }
      if (!r.clean) process.exitCode = 1;
    });
}

export function diskdCommand(program: Command): void {
  program
    .command('diskd')
    .description('run the storage daemon of this host: serves its volumes over NBD (normally started by the agent)')
    .option('--data <dir>', 'diskd directory (default: $OUTRIG_DATA/agent/diskd)')
    .addOption(cacheOption())
    .option(
      '--max-in-flight-mib <n>',
      'write MiB all NBD connections together may have waiting for the disk; past it they are not read until half is done',
      '256',
    )
    .option('--max-backlog-mib <n>', 'write-back MiB all volumes together may hold acknowledged but not yet durable; past it writes wait for a sync', '1024')
    .action(async (o: { data?: string; cache: 'writeback' | 'writethrough'; maxInFlightMib: string; maxBacklogMib: string }) => {
      const mib = (flag: string, v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 65536) throw new CliError(`${flag}: '${v}' is not a whole number of MiB from 1 to 65536`, 2);
        return n * 1024 * 1024;
      };
      const limits = { maxTotalInFlightBytes: mib('--max-in-flight-mib', o.maxInFlightMib), maxBacklogBytes: mib('--max-backlog-mib', o.maxBacklogMib) };
      const { join } = await import('node:path');
      const { dataRoot } = await import('../../common/paths.ts');
      const { createLogger } = await import('../../common/log.ts');
      const { Diskd } = await import('../../disk/index.ts');
      const { guardProcess } = await import('../../common/crash-guard.ts');
      const log = createLogger('diskd');
      // A throw half-way through a request may leave the engine's memory wrong: exit, and the agent
      // starts diskd again (QEMU's NBD clients reconnect); a forgotten rejection is only logged.
      guardProcess(log, { exitOnException: true });
      const d = new Diskd(o.data ?? join(dataRoot(), 'agent', 'diskd'), log, o.cache, limits);
      await d.start();
      process.stderr.write(`outrig diskd serving ${d.paths.nbd}, control ${d.paths.control}\n`);
      await untilSignal(() => d.close());
    });
}
