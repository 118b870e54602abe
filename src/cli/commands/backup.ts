import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import ora, { type Ora } from 'ora';
import { Archiver } from '../../backup/index.ts';
import { backupDiskImage, backupLiveDisk, restoreDiskImage, restoreSystemState, type BmrManifest } from '../../backup/index.ts';
import { partitionName } from '../../backup/index.ts';
import { findLiveDisk } from '../../backup/index.ts';
import { WrongPassphraseError } from '../../backup/index.ts';
import { acquireLock, type Lock } from '../../backup/index.ts';
import { DEFAULT_GROUP_BY, parseGroupBy, prune, sourceOf, type Retention, type RetentionGroup } from '../../backup/index.ts';
import { Repository, RepositoryError } from '../../backup/index.ts';
import { Restorer } from '../../backup/index.ts';
import { LocalStorage } from '../../backup/index.ts';
import { verifyRepository } from '../../backup/index.ts';
import { CliError } from '../errors.ts';
import { printDetails, printJson, printTable } from '../output.ts';
import { collect, parseIntStrict } from '../parse.ts';
import { waitOptions, type WaitFlags } from '../wait.ts';
import { clusterCancel, clusterCreate, clusterDelete, clusterKey, clusterList, clusterRestore, clusterShow } from './backup-cluster.ts';
import { bytes, diskSummary } from './backup-format.ts';
import { backupPolicyCommands } from './backup-policy.ts';

interface RepoFlags {
  repo?: string;
  passphraseFile?: string;
  json?: boolean;
}

/** The passphrase, from a file or the environment; never from an argument (it would show in ps). */
function passphrase(o: RepoFlags): string | undefined {
  if (o.passphraseFile) {
    try {
      return readFileSync(o.passphraseFile, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new CliError(`cannot read the passphrase file ${o.passphraseFile}: ${(e as Error).message}`, 2);
    }
  }
  return process.env.OUTRIG_BACKUP_PASSPHRASE;
}

function storageOf(o: RepoFlags): LocalStorage {
  if (!o.repo)
    throw new CliError(
      "give the repository: outrig backup --repo DIR ... (the cluster's repository opens with --passphrase-file $OUTRIG_DATA/backup-passphrase)",
      2,
    );
  return new LocalStorage(resolve(o.repo));
}

async function openRepo(o: RepoFlags): Promise<Repository> {
  try {
    return await Repository.open(storageOf(o), passphrase(o));
  } catch (e) {
    if (e instanceof RepositoryError || e instanceof WrongPassphraseError) throw new CliError(e.message);
    throw e;
  }
}

/** A live line on a terminal (files, bytes, rate); nothing when output is JSON or not a terminal. */
class Progress {
  private readonly spinner?: Ora;
  private readonly start = Date.now();
  private last = 0;

  constructor(quiet: boolean) {
    if (!quiet && process.stderr.isTTY) this.spinner = ora({ stream: process.stderr }).start();
  }

  update(files: number, done: number, extra = ''): void {
    if (!this.spinner || Date.now() - this.last < 100) return;
    this.last = Date.now();
    const s = (Date.now() - this.start) / 1000;
    this.spinner.text = `${files} files, ${bytes(done)}, ${bytes(done / Math.max(s, 0.001))}/s${extra}`;
  }

  stop(): void {
    this.spinner?.stop();
  }
}

async function findSnapshot(repo: Repository, ref: string) {
  return repo.findSnapshot(ref).catch((e: Error) => {
    throw new CliError(e.message);
  });
}

async function locked<T>(repo: Repository, purpose: string, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
  let lock: Lock;
  try {
    lock = await acquireLock(repo.storage, purpose, exclusive);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

export function backupCommands(program: Command): void {
  const backup = program
    .command('backup')
    .description('file-based, deduplicated, encrypted backups: of volumes through the controller, or standalone with --repo as restic users expect')
    .option('--repo <dir>', 'work on this repository directly (standalone); without it, commands go to the controller')
    .option('--passphrase-file <file>', 'read the passphrase from this file (default: $OUTRIG_BACKUP_PASSPHRASE)');
  const flags = (cmd: Command): RepoFlags => cmd.optsWithGlobals<RepoFlags>();

  backup
    .command('init')
    .description('make a new repository')
    .option('--no-encryption', 'make an unencrypted repository, on purpose')
    .action(async (o: { encryption: boolean }, cmd: Command) => {
      const f = flags(cmd);
      const storage = storageOf(f);
      const pass = passphrase(f);
      if (o.encryption && !pass)
        throw new CliError('no passphrase: set OUTRIG_BACKUP_PASSPHRASE or give --passphrase-file (or --no-encryption for an unencrypted repository)', 2);
      await storage.create();
      let repo: Repository;
      try {
        repo = await Repository.init(storage, o.encryption ? pass : undefined);
      } catch (e) {
        if (e instanceof RepositoryError) throw new CliError(e.message);
        throw e;
      }
      if (f.json) return printJson({ id: repo.id, location: storage.location, encrypted: o.encryption });
      process.stdout.write(`repository ${repo.id.slice(0, 8)} created at ${storage.location}${o.encryption ? '' : ' (unencrypted)'}\n`);
    });

  waitOptions(
    backup
      .command('create [paths...]')
      .description(
        'back up a volume or instance through the controller; with --repo: files and directories, or a whole disk image (--disk), into a new snapshot',
      )
      .option('--volume <volume>', 'cluster: back up this volume (BMR-ready: files, layout, identities, boot loader)')
      .option('--instance <instance>', "cluster: back up this instance's boot volume")
      .option('--host <host>', "cluster: back up these paths of this host's own filesystems (its agent reads them)")
      .option('--name <name>', 'cluster: name of the backup (default: <volume>-<time>)')
      .option('--repository <dir>', "cluster: repository directory as the volume's host sees it (default: the cluster's)")
      .option('--disk <image>', 'standalone: a raw disk image: its files, partition table, filesystem identities and boot loader, for bare-metal recovery')
      .option(
        '--bmr',
        "a bare-metal record of the disk holding PATH (standalone: this machine's; with --host: that host's): every filesystem on it (each read through its mount), the partition table, identities and boot loader",
      )
      .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
      .option('--parent <snapshot>', 'standalone: compare against this snapshot to skip unchanged files (default: the latest one of the same paths and host)'),
  ).action(
    async (
      paths: string[],
      o: {
        tag: string[];
        parent?: string;
        disk?: string;
        bmr?: boolean;
        volume?: string;
        instance?: string;
        host?: string;
        name?: string;
        repository?: string;
      } & WaitFlags,
      cmd: Command,
    ) => {
      const f = flags(cmd);
      if (!f.repo) {
        if (o.disk) throw new CliError('disk images are backed up standalone: give --repo DIR', 2);
        if (paths.length && !o.host) throw new CliError("paths go with --host HOST (a host's files through its agent), or with --repo DIR (standalone)", 2);
        if (o.host && !paths.length) throw new CliError('--host needs the paths to back up', 2);
        return clusterCreate(cmd, { ...o, paths: paths.map((p) => resolve(p)) });
      }
      if (o.volume || o.instance || o.host) throw new CliError('--volume, --instance and --host go through the controller: drop --repo', 2);
      if (!o.disk === !paths.length) throw new CliError('give paths to back up, or --disk IMAGE (one of them)', 2);
      if (o.bmr && !paths.length) throw new CliError('--bmr goes with a path on the disk to record (e.g. /)', 2);
      if (o.bmr) {
        const disks = new Set(paths.map((p) => liveDiskOf(p).device));
        if (disks.size > 1) throw new CliError(`the paths are on more than one disk (${[...disks].join(', ')}): make one bare-metal record per disk`, 2);
      }
      const repo = await openRepo(f);
      if (o.bmr) {
        const start = Date.now();
        const r = await locked(repo, 'backup', false, () => backupLiveDisk(repo, resolve(paths[0]!), { tags: o.tag }));
        const mounted = [...r.disk.mounted].map(([partition, mountPoint]) => ({ partition, mountPoint }));
        const out = {
          id: r.id,
          disk: r.disk.device,
          bmrReady: r.manifest.bmrReady,
          partitions: r.manifest.layout.partitions.length,
          filesystems: r.manifest.layout.filesystems,
          mounted,
          seconds: (Date.now() - start) / 1000,
        };
        if (f.json) return printJson(out);
        process.stdout.write(
          `snapshot ${r.id.slice(0, 8)} saved: disk ${r.disk.device} (${diskSummary(r.manifest, r.snapshot.stats.files)}; ` +
            `${mounted.map((m) => `/p${m.partition} read from ${m.mountPoint}`).join(', ') || 'no filesystem mounted'}), BMR-ready, in ${out.seconds.toFixed(1)} s\n`,
        );
        return;
      }
      if (o.disk) {
        rawImage(o.disk);
        const start = Date.now();
        const r = await locked(repo, 'backup', false, () => backupDiskImage(repo, resolve(o.disk!), { tags: o.tag }));
        const out = {
          id: r.id,
          bmrReady: r.manifest.bmrReady,
          partitions: r.manifest.layout.partitions.length,
          filesystems: r.manifest.layout.filesystems,
          seconds: (Date.now() - start) / 1000,
        };
        if (f.json) return printJson(out);
        process.stdout.write(
          `snapshot ${r.id.slice(0, 8)} saved: disk ${o.disk} (${diskSummary(r.manifest, r.snapshot.stats.files)}), BMR-ready, in ${out.seconds.toFixed(1)} s\n`,
        );
        return;
      }
      const abs = [...new Set(paths.map((p) => resolve(p)))].sort();
      const result = await locked(repo, 'backup', false, async () => {
        let parent = o.parent;
        if (!parent) {
          const same = (await repo.snapshots()).filter((s) => JSON.stringify(s.paths) === JSON.stringify(abs));
          parent = same.at(-1)?.id;
        }
        const progress = new Progress(!!f.json);
        const a = new Archiver(repo, { parent, tags: o.tag, onProgress: (p) => progress.update(p.files, p.bytes) });
        const start = Date.now();
        try {
          const r = await a.run(abs).catch((e: NodeJS.ErrnoException) => {
            throw e.code === 'ENOENT' ? new CliError(`${e.path ?? 'a path'} does not exist`, 2) : e;
          });
          return { ...r, progress: a.progress, seconds: (Date.now() - start) / 1000 };
        } finally {
          progress.stop();
        }
      });
      const p = result.progress;
      const out = {
        id: result.id,
        parent: result.snapshot.parent,
        files: p.files,
        dirs: p.dirs,
        bytes: p.bytes,
        bytesRead: p.bytesRead,
        unchanged: p.unchanged,
        added: repo.stats.bytesStored,
        errors: p.errors,
        seconds: result.seconds,
      };
      if (f.json) printJson(out);
      else {
        process.stdout.write(
          `snapshot ${result.id.slice(0, 8)} saved: ${p.files} files, ${p.dirs} directories, ${bytes(p.bytes)}` +
            ` (${p.unchanged} unchanged since ${result.snapshot.parent?.slice(0, 8) ?? 'no parent'}; ${bytes(repo.stats.bytesStored)} added to the repository) in ${result.seconds.toFixed(1)} s\n`,
        );
        for (const e of p.errors) process.stderr.write(`could not back up ${e.path}: ${e.error}\n`);
      }
      if (p.errors.length) process.exitCode = 3;
    },
  );

  backup
    .command('list')
    .description("list backups (with --repo: the repository's snapshots)")
    .action(async (_o, cmd: Command) => {
      const f = flags(cmd);
      if (!f.repo) return clusterList(cmd);
      const repo = await openRepo(f);
      const snaps = await repo.snapshots();
      if (f.json) return printJson(snaps);
      printTable(
        ['ID', 'TIME', 'HOST', 'SOURCE', 'FILES', 'SIZE', 'BMR', 'TAGS'],
        snaps.map((s) => [
          s.id.slice(0, 8),
          s.time.replace('T', ' ').slice(0, 19),
          s.hostname,
          sourceOf(s),
          s.stats.files,
          bytes(s.stats.bytes),
          (s.manifest as BmrManifest | undefined)?.bmrReady ? 'yes' : 'no',
          s.tags.join(',') || '-',
        ]),
      );
    });

  backup
    .command('show <snapshot>')
    .description('show a backup (with --repo: a snapshot by id, unique id prefix, or latest)')
    .action(async (ref: string, _o, cmd: Command) => {
      const f = flags(cmd);
      if (!f.repo) return clusterShow(cmd, ref);
      const repo = await openRepo(f);
      const s = await findSnapshot(repo, ref);
      const m = s.manifest as BmrManifest | undefined;
      const bmrReady = !!m?.bmrReady;
      if (f.json) return printJson({ ...s, bmrReady });
      printDetails({
        id: s.id,
        time: s.time,
        host: s.hostname,
        source: sourceOf(s),
        paths: s.paths,
        parent: s.parent,
        tags: s.tags,
        files: s.stats.files,
        directories: s.stats.dirs,
        size: bytes(s.stats.bytes),
        bmrReady: bmrReady ? 'yes' : 'no (a file backup: no disk layout or boot loader recorded)',
        disk: m
          ? {
              table: m.layout.table.label === 'none' ? 'none' : `${m.layout.table.label} ${m.layout.table.id}`,
              rawAreas: m.rawAreas
                ? `${m.rawAreas.length} stretches, ${bytes(m.rawAreas.reduce((n, a) => n + a.length, 0))} (the whole disk, block by block; zeroes not stored)`
                : undefined,
              partitions: m.layout.partitions.map((p) => `${p.index}: start ${p.start}, ${p.size} sectors, type ${p.type}${p.bootable ? ', bootable' : ''}`),
              filesystems: m.layout.filesystems.map((x) => `${partitionName(x.partition)}: ${x.type} UUID=${x.uuid ?? '-'} LABEL=${x.label ?? '-'}`),
              bootAreas: m.bootAreas.map((a) => a.what),
              bootLoader: m.bootLoader
                ? `${m.bootLoader.kind}${m.bootLoader.config ? ` (${m.bootLoader.config} on partition ${m.bootLoader.partition})` : ''}`
                : undefined,
              mounts: m.mounts?.map((x) => `${partitionName(x.partition)} on ${x.mountPoint}`),
              systemState: m.ssr,
            }
          : undefined,
      });
    });

  waitOptions(
    backup
      .command('restore <snapshot>')
      .description(
        'cluster: rebuild a backup into a new volume, or its system state into an existing one; with --repo: files (each to T/<original absolute path>) or disk images',
      )
      .option(
        '--volume <volume>',
        'cluster: the new volume to rebuild the disk into (bare-metal recovery), or with --system-state the existing volume to repair',
      )
      .option('--tenant <tenant>', 'cluster: tenant of the new volume')
      .option('--host <host>', "cluster, with --target: the host to restore files on (default: the backup's)")
      .option('--target <dir>', 'where to restore files (each to T/<original absolute path>); in a cluster, a directory on the host')
      .option('--disk <image>', 'standalone: rebuild the whole disk into this new image file (bare-metal recovery; the snapshot must be BMR-ready)')
      .option(
        '--system-state',
        'with --volume or --disk: put back only the system state (OS configuration, boot files, boot loader) into that existing disk, leaving user data as it is',
      )
      .option(
        '--include <path>',
        'with --target: restore only this absolute path or subtree; with --volume of the same disk: put these files (/pN/PATH) back into it (repeatable)',
        collect,
        [],
      ),
  ).action(
    async (
      ref: string,
      o: { target?: string; include: string[]; disk?: string; systemState?: boolean; volume?: string; tenant?: string; host?: string } & WaitFlags,
      cmd: Command,
    ) => {
      const f = flags(cmd);
      if (!f.repo) {
        if (o.disk) throw new CliError('--disk restores from a repository directly: give --repo DIR', 2);
        if (o.target && o.volume) throw new CliError('give --target DIR (files on a host) or --volume (a disk), not both', 2);
        return clusterRestore(cmd, ref, o);
      }
      if (!o.target === !o.disk) throw new CliError('give --target DIR (files) or --disk IMAGE (the whole disk)', 2);
      if (o.systemState && !o.disk) throw new CliError('--system-state goes with --disk IMAGE (the machine disk to repair)', 2);
      const repo = await openRepo(f);
      const s = await findSnapshot(repo, ref);
      if (o.disk && o.systemState) {
        const start = Date.now();
        const r = await locked(repo, 'restore', false, () =>
          restoreSystemState(repo, s, resolve(o.disk!)).catch((e: Error) => {
            throw new CliError(`system-state restore failed: ${e.message}`);
          }),
        );
        const seconds = (Date.now() - start) / 1000;
        if (f.json) return printJson({ snapshot: s.id, disk: resolve(o.disk), restored: r.paths, seconds });
        process.stdout.write(
          `system state (${r.paths.join(', ')} and the boot areas) restored from snapshot ${s.id.slice(0, 8)} into ${resolve(o.disk)} in ${seconds.toFixed(1)} s\n`,
        );
        return;
      }
      if (o.disk) {
        const start = Date.now();
        await locked(repo, 'restore', false, () =>
          restoreDiskImage(repo, s, resolve(o.disk!)).catch((e: Error) => {
            throw new CliError(`bare-metal restore failed: ${e.message}`);
          }),
        );
        const seconds = (Date.now() - start) / 1000;
        if (f.json) return printJson({ snapshot: s.id, disk: resolve(o.disk), seconds });
        process.stdout.write(`disk rebuilt from snapshot ${s.id.slice(0, 8)} into ${resolve(o.disk)} in ${seconds.toFixed(1)} s\n`);
        return;
      }
      const target = o.target!;
      const progress = new Progress(!!f.json);
      const start = Date.now();
      const r = await locked(repo, 'restore', false, async () => {
        try {
          return await new Restorer(repo, { include: o.include.map((p) => resolve(p)), onProgress: (p) => progress.update(p.files, p.bytes) }).run(
            s,
            resolve(target),
          );
        } catch (e) {
          throw new CliError(`restore failed and is incomplete (${resolve(target)}/.outrig-restore-incomplete marks it): ${(e as Error).message}`);
        } finally {
          progress.stop();
        }
      });
      const seconds = (Date.now() - start) / 1000;
      if (f.json) return printJson({ snapshot: s.id, target: resolve(target), files: r.files, bytes: r.bytes, seconds });
      process.stdout.write(`restored ${r.files} files, ${bytes(r.bytes)} from snapshot ${s.id.slice(0, 8)} to ${resolve(target)} in ${seconds.toFixed(1)} s\n`);
    },
  );

  backupPolicyCommands(backup);

  backup
    .command('key <scope-or-backup>')
    .description("cluster: the repository and passphrase of a key scope (volumes/ID, hosts/ID) or a backup's, derived from this controller's master secret")
    .option('--master-file <file>', 'the master secret (default: $OUTRIG_DATA/backup-passphrase)')
    .action((ref: string, o: { masterFile?: string }, cmd: Command) => clusterKey(cmd, ref, o));

  waitOptions(
    backup
      .command('cancel <backup>')
      .description('cluster: stop a pending or running backup; it ends as cancelled, with nothing of it left in the repository but packs prune removes'),
  ).action(async (ref: string, o: WaitFlags, cmd: Command) => {
    if (flags(cmd).repo) throw new CliError('standalone backups run in this process: stop them with Ctrl-C', 2);
    return clusterCancel(cmd, ref, o);
  });

  backup
    .command('delete <backup>')
    .description('cluster: delete a backup and forget its snapshot in the repository (a running one is stopped first)')
    .action(async (ref: string, _o, cmd: Command) => {
      if (flags(cmd).repo) throw new CliError('standalone repositories forget snapshots with prune', 2);
      return clusterDelete(cmd, ref);
    });

  backup
    .command('verify')
    .description('re-read and re-hash everything; name damaged snapshots (exit 1 if any)')
    .action(async (_o, cmd: Command) => {
      const f = flags(cmd);
      const repo = await openRepo(f);
      const progress = new Progress(!!f.json);
      const r = await locked(repo, 'verify', false, async () => {
        try {
          return await verifyRepository(repo, (done, total, b) => progress.update(done, b, ` (${done}/${total} packs)`));
        } finally {
          progress.stop();
        }
      });
      const damaged = r.snapshots.filter((s) => !s.ok);
      if (f.json) printJson(r);
      else {
        process.stdout.write(
          `${r.packs} packs, ${r.blobs} blobs, ${bytes(r.bytes)} checked; ${r.damagedPacks.length} damaged or missing packs, ${r.badBlobs.length} damaged blobs\n`,
        );
        for (const p of r.damagedPacks) process.stdout.write(`pack ${p.pack}: ${p.reason}\n`);
        for (const s of damaged) {
          process.stdout.write(`snapshot ${s.id.slice(0, 8)} (${s.time}) is damaged:\n`);
          for (const p of s.problems.slice(0, 20)) process.stdout.write(`  ${p}\n`);
          if (s.problems.length > 20) process.stdout.write(`  ... and ${s.problems.length - 20} more\n`);
        }
        if (!damaged.length && !r.damagedPacks.length && !r.badBlobs.length) process.stdout.write('no damage found\n');
      }
      if (damaged.length || r.damagedPacks.length || r.badBlobs.length) process.exitCode = 1;
    });

  backup
    .command('prune')
    .description(
      'forget snapshots outside the retention rules and delete the data only they used; the rules apply to each group (host and source) on its own, as restic does',
    )
    .addOption(new Option('--keep-last <n>', 'keep the newest n snapshots').argParser(parseIntStrict('--keep-last')))
    .addOption(new Option('--keep-daily <n>', 'keep the newest snapshot of each of the last n days').argParser(parseIntStrict('--keep-daily')))
    .addOption(new Option('--keep-weekly <n>', 'the same per ISO week').argParser(parseIntStrict('--keep-weekly')))
    .addOption(new Option('--keep-monthly <n>', 'the same per month').argParser(parseIntStrict('--keep-monthly')))
    .option(
      '--group-by <fields>',
      "group snapshots by these before applying the rules: host, paths (the source: paths, disk or volume), tags, joined by commas; '' for one group",
      DEFAULT_GROUP_BY.join(','),
    )
    .option('--dry-run', 'say what would go, change nothing')
    .action(
      async (o: { keepLast?: number; keepDaily?: number; keepWeekly?: number; keepMonthly?: number; groupBy: string; dryRun?: boolean }, cmd: Command) => {
        const f = flags(cmd);
        let groupBy;
        try {
          groupBy = parseGroupBy(o.groupBy);
        } catch (e) {
          throw new CliError((e as Error).message, 2);
        }
        const repo = await openRepo(f);
        const rules: Retention = { last: o.keepLast, daily: o.keepDaily, weekly: o.keepWeekly, monthly: o.keepMonthly };
        for (const k of Object.keys(rules) as (keyof Retention)[]) if (rules[k] === undefined) delete rules[k];
        const r = await locked(repo, 'prune', true, () =>
          prune(repo, rules, { dryRun: o.dryRun, groupBy }).catch((e: Error) => {
            throw new CliError(e.message, 2);
          }),
        );
        if (f.json) return printJson({ dryRun: !!o.dryRun, groupBy, ...r });
        for (const g of r.groups) process.stdout.write(groupReport(g, !!o.dryRun));
        if (!r.groups.length) process.stdout.write('no snapshots\n');
        if (!o.dryRun)
          process.stdout.write(
            `${r.removed.length} snapshots removed; ${r.packsDeleted} packs deleted, ${r.packsRewritten} rewritten, ${bytes(r.bytesFreed)} freed\n`,
          );
        else process.stdout.write(`dry run: ${r.removed.length} snapshots would be removed, nothing changed\n`);
      },
    );
}

/** One group of `prune`'s answer: its host and source, then each snapshot with why it stays or that it goes. */
function groupReport(g: RetentionGroup, dryRun: boolean): string {
  const head =
    [g.host !== undefined && `host ${g.host}`, g.source !== undefined && `source ${g.source}`, g.tags !== undefined && `tags ${g.tags.join(',') || '-'}`]
      .filter(Boolean)
      .join(', ') || 'all snapshots';
  const line = (id: string, time: string, what: string) => `  ${id.slice(0, 8)}  ${time.replace('T', ' ').slice(0, 19)}  ${what}\n`;
  const rows = [
    ...g.keep.map((k) => ({ ...k, what: `keep (${k.reasons.join(', ')})` })),
    ...g.remove.map((x) => ({ ...x, what: dryRun ? 'would remove' : 'remove' })),
  ].sort((a, b) => b.time.localeCompare(a.time));
  return `${head}: keep ${g.keep.length}, ${dryRun ? 'would remove' : 'remove'} ${g.remove.length}\n${rows.map((x) => line(x.id, x.time, x.what)).join('')}`;
}

/** --disk takes a raw image: a qcow2 file would be kept as bytes of the qcow2 format, not as the disk it holds. */
function rawImage(path: string): void {
  const head = Buffer.alloc(4);
  try {
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new CliError(`--disk ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, 2);
  }
  if (head.readUInt32BE(0) === 0x514649fb)
    throw new CliError(
      `--disk ${path} is a qcow2 image: back up a raw one (qemu-img convert -O raw ${path} disk.raw), or import it and back up the volume through the controller`,
      2,
    );
}

function liveDiskOf(path: string) {
  try {
    return findLiveDisk(resolve(path));
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
}
