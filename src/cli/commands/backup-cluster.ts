/**
 * `outrig backup ...` without --repo: backups of volumes through the controller, into the
 * cluster's repository (or one a backup names).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { scopePassphrase } from '../../backup/index.ts';
import { partitionName } from '../../backup/index.ts';
import { dataRoot } from '../../common/paths.ts';
import type { Command } from 'commander';
import { backupSettled, type Backup, type BackupProgress } from '../../model/backup.ts';
import type { Volume } from '../../model/volume.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';
import { waitFor, type WaitFlags } from '../wait.ts';
import { bytes } from './backup-format.ts';

const bpath = (ref: string) => `/v1/backups/${encodeURIComponent(ref)}`;

export function progressText(p: BackupProgress | undefined, since?: string): string {
  if (!p) return '';
  const s = since ? Math.max((Date.now() - Date.parse(since)) / 1000, 0.001) : 0;
  const rate = s && p.bytes ? `, ${bytes(p.bytes / s)}/s` : '';
  const total = p.totalBytes ? ` of ${bytes(p.totalBytes)}` : '';
  // A stage that counts nothing yet (copying the snapshot, reading its file systems) is named alone, not as "0 files, 0 B".
  if (!p.files && !p.bytes && !p.totalBytes) return ` — ${p.stage}`;
  return ` — ${p.stage}: ${p.files} files, ${bytes(p.bytes)}${total}${rate}`;
}

/** What was backed up: a volume, or a host's paths. */
function source(b: Backup): string {
  return b.spec.volume ? `volume ${b.status.volumeName ?? b.spec.volume}` : `${(b.spec.paths ?? []).join(', ')} on host ${b.status.hostId ?? b.spec.host}`;
}

function describe(b: Backup | undefined, name: string): string {
  if (!b) return `backup ${name} is gone`;
  const r = b.status.result;
  const done = r
    ? `: ${r.files} files, ${bytes(r.bytes)} (${bytes(r.addedBytes)} new in the repository)${r.bmrReady ? ', BMR-ready' : ''} in ${r.seconds.toFixed(1)} s`
    : '';
  return `backup ${b.name} of ${source(b)}: ${b.status.phase}${done}${progressText(b.status.progress, b.status.startedAt)}${b.status.message ? ` (${b.status.message})` : ''}`;
}

/** What keeps going when the CLI stops waiting (Ctrl-C, timeout), and how to follow or cancel it. */
export function stillRunning(name: string, x: Backup | undefined): string {
  if (!x) return `backup ${name} is gone`;
  const where = x.status.hostId ?? x.spec.host;
  const state =
    x.status.phase === 'pending'
      ? ` is still pending (${x.status.message ?? 'waiting for its volume'})`
      : ` keeps running${where ? ` on host ${where}` : ''}${progressText(x.status.progress, x.status.startedAt)}`;
  return `backup ${name}${state}; follow with \`outrig backup show ${name}\`, cancel with \`outrig backup cancel ${name}\``;
}

export async function clusterCreate(
  cmd: Command,
  o: { volume?: string; instance?: string; host?: string; paths: string[]; bmr?: boolean; name?: string; tag: string[]; repository?: string } & WaitFlags,
): Promise<void> {
  const ctx = contextOf(cmd);
  if ([o.volume, o.instance, o.host].filter(Boolean).length !== 1)
    throw new CliError('give --volume VOLUME, --instance INSTANCE, or --host HOST PATH... (or --repo DIR for a standalone backup)', 2);
  const b = await ctx.api.post<Backup>('/v1/backups', {
    name: o.name,
    volume: o.volume,
    instance: o.instance,
    host: o.host,
    paths: o.host ? o.paths : undefined,
    bmr: o.bmr,
    tags: o.tag.length ? o.tag : undefined,
    repository: o.repository,
  });
  const final = !o.wait
    ? b
    : await waitFor<Backup>({
        poll: () => ctx.api.find<Backup>(bpath(b.id)),
        done: (x) => x?.status.phase === 'completed',
        fail: (x) =>
          x?.status.phase === 'failed' || x?.status.phase === 'cancelled'
            ? `${x.status.message ?? `backup ${b.name} ${x.status.phase}`} (it stays in backup list as ${x.status.phase}; outrig backup delete ${b.name} removes it)`
            : !x
              ? `backup ${b.name} is gone`
              : undefined,
        describe: (x) => describe(x, b.name),
        timeoutMs: o.timeout * 1000,
        quiet: ctx.json,
        intervalMs: 500,
        interrupted: (x) => stillRunning(b.name, x),
      });
  if (ctx.json) return printJson(final);
  process.stdout.write(`${describe(final, b.name)}\n`);
}

export async function clusterList(cmd: Command): Promise<void> {
  const ctx = contextOf(cmd);
  const items = (await ctx.api.get<{ items: Backup[] }>('/v1/backups')).items;
  if (ctx.json) return printJson(items);
  printTable(
    ['NAME', 'ID', 'PHASE', 'SOURCE', 'SNAPSHOT', 'BMR', 'FILES', 'SIZE', 'AGE'],
    items.map((b) => [
      b.name,
      b.id,
      b.status.phase,
      b.spec.volume ? (b.status.volumeName ?? b.spec.volume) : `${b.spec.host}:${(b.spec.paths ?? []).join(',')}`,
      b.status.result?.snapshotId.slice(0, 8) ?? '-',
      b.status.result ? (b.status.result.bmrReady ? 'yes' : 'no') : '-',
      b.status.result?.files ?? '-',
      b.status.result ? bytes(b.status.result.bytes) : '-',
      age(b.createdAt),
    ]),
  );
}

export async function clusterShow(cmd: Command, ref: string): Promise<void> {
  const ctx = contextOf(cmd);
  const b = await ctx.api.get<Backup>(bpath(ref));
  if (ctx.json) return printJson(b);
  const r = b.status.result;
  printDetails({
    name: b.name,
    id: b.id,
    phase: b.status.phase,
    message: b.status.message,
    source: source(b),
    repository: b.spec.scope ? `${b.spec.repository}/${b.spec.scope} (key scope ${b.spec.scope})` : `${b.spec.repository} (shared, from before key scopes)`,
    snapshot: r?.snapshotId,
    bmrReady: r ? (r.bmrReady ? 'yes' : 'no') : undefined,
    files: r?.files,
    size: r ? bytes(r.bytes) : undefined,
    addedToRepository: r ? bytes(r.addedBytes) : undefined,
    diskSize: b.status.sizeBytes !== undefined ? bytes(b.status.sizeBytes) : undefined,
    filesystems: r?.filesystems.map((f) => `${partitionName(f.partition)}: ${f.type} UUID=${f.uuid ?? '-'} LABEL=${f.label ?? '-'}`),
    systemState: r?.systemState,
    bootLoader: r?.bootLoader
      ? `${r.bootLoader.kind}${r.bootLoader.config ? ` (${r.bootLoader.config} on partition ${r.bootLoader.partition})` : ''}`
      : undefined,
    mounts: r?.mounts?.map((x) => `${partitionName(x.partition)} on ${x.mountPoint}`),
    notBackedUp: r?.unreadable?.map((x) => `${x.path}: ${x.error}`),
    progress: b.status.progress ? progressText(b.status.progress, b.status.startedAt).slice(3) : undefined,
    tags: b.spec.tags,
    startedAt: b.status.startedAt,
    completedAt: b.status.completedAt,
    createdAt: b.createdAt,
  });
}

export async function clusterRestore(
  cmd: Command,
  ref: string,
  o: { volume?: string; systemState?: boolean; tenant?: string; target?: string; include: string[]; host?: string } & WaitFlags,
): Promise<void> {
  const ctx = contextOf(cmd);
  if (o.target) {
    const r = await ctx.api.post<{ host: string; target: string; files: number; bytes: number; seconds: number }>(`${bpath(ref)}/restore-files`, {
      target: resolve(o.target),
      include: o.include.length ? o.include.map((p) => resolve(p)) : undefined,
      host: o.host,
    });
    if (ctx.json) return printJson(r);
    process.stdout.write(`restored ${r.files} files, ${bytes(r.bytes)} from backup ${ref} to ${r.target} on host ${r.host} in ${r.seconds.toFixed(1)} s\n`);
    return;
  }
  if (!o.volume)
    throw new CliError(
      'give --volume NAME: a new volume to rebuild the disk into (or an existing one with --system-state, or with --include /pN/PATH for files); or --target DIR for files on a host',
      2,
    );
  if (o.include.length) {
    // Files back into an existing volume (the disk the backup was made of).
    const r = await ctx.api.post<{ restored: string[]; seconds: number }>(`${bpath(ref)}/restore-into-volume`, { volume: o.volume, include: o.include });
    if (ctx.json) return printJson(r);
    process.stdout.write(`${r.restored.join(', ')} restored from backup ${ref} into volume ${o.volume} in ${r.seconds.toFixed(1)} s\n`);
    return;
  }
  if (o.systemState) {
    const r = await ctx.api.post<{ restored: string[]; seconds: number }>(`${bpath(ref)}/restore-system-state`, { volume: o.volume });
    if (ctx.json) return printJson(r);
    process.stdout.write(
      `system state (${r.restored.join(', ')} and the boot areas) restored from backup ${ref} into volume ${o.volume} in ${r.seconds.toFixed(1)} s\n`,
    );
    return;
  }
  const v = await ctx.api.post<Volume>('/v1/volumes', { name: o.volume, tenant: o.tenant, source: { backup: ref } });
  const final = !o.wait
    ? v
    : await waitFor<Volume>({
        poll: () => ctx.api.find<Volume>(`/v1/volumes/${v.id}`),
        done: (x) => !!x && (x.status.phase === 'available' || x.status.phase === 'in-use'),
        fail: (x) =>
          x?.status.phase === 'failed'
            ? `restore into volume ${v.name} failed: ${x.status.message ?? 'see outrig volume show'}`
            : !x
              ? `volume ${v.name} is gone`
              : undefined,
        describe: (x) =>
          `volume ${v.name}: ${x?.status.phase ?? 'gone'}${progressText(x?.status.progress)}${x?.status.message ? ` (${x.status.message})` : ''}`,
        timeoutMs: o.timeout * 1000,
        quiet: ctx.json,
        interrupted: (x) =>
          `volume ${v.name} is still being rebuilt from backup ${ref} (${x?.status.phase ?? 'gone'}${progressText(x?.status.progress)}); follow with \`outrig volume show ${v.name}\`, cancel with \`outrig volume delete ${v.name}\``,
        intervalMs: 500,
      });
  if (ctx.json) return printJson(final);
  process.stdout.write(`volume ${v.name} ${final?.status.phase === 'creating' || !o.wait ? 'is being rebuilt' : 'rebuilt'} from backup ${ref}\n`);
}

/** Stops a pending or running backup; with wait, until it has ended. */
export async function clusterCancel(cmd: Command, ref: string, o: WaitFlags): Promise<void> {
  const ctx = contextOf(cmd);
  const b = await ctx.api.post<Backup>(`${bpath(ref)}/cancel`, {});
  const ended = (x: Backup | undefined) => !x || backupSettled(x.status.phase);
  const final =
    !o.wait || ended(b)
      ? b
      : await waitFor<Backup>({
          poll: () => ctx.api.find<Backup>(bpath(b.id)),
          done: ended,
          describe: (x) => describe(x, b.name),
          timeoutMs: o.timeout * 1000,
          quiet: ctx.json,
          intervalMs: 500,
          interrupted: (x) => `backup ${b.name} is being cancelled (${x?.status.phase ?? 'gone'}); follow with \`outrig backup show ${b.name}\``,
        });
  if (ctx.json) return printJson(final);
  process.stdout.write(`${final ? describe(final, b.name) : `backup ${b.name} is gone`}${final && !ended(final) ? ' — cancel asked for' : ''}\n`);
}

export async function clusterDelete(cmd: Command, ref: string): Promise<void> {
  const ctx = contextOf(cmd);
  const b = await ctx.api.delete<Backup>(bpath(ref));
  if (ctx.json) return printJson(b);
  process.stdout.write(`backup ${b.name} deleted (its snapshot is forgotten; prune the repository to free the data)\n`);
}

/**
 * The repository and passphrase of a key scope (`volumes/<id>`, `hosts/<id>`) or of a backup's,
 * derived from the master secret on this machine (the controller's), to open it with the
 * standalone commands: `outrig backup --repo DIR --passphrase-file F ...`. A backup named rather
 * than a scope is looked up through the API.
 */
export async function clusterKey(cmd: Command, ref: string, o: { masterFile?: string }): Promise<void> {
  const ctx = contextOf(cmd);
  let scope = ref;
  let repository: string | undefined;
  if (!/^(volumes|hosts)\/[a-z0-9][a-z0-9-]{0,62}$/.test(ref)) {
    const b = await ctx.api.get<Backup>(bpath(ref));
    if (!b.spec.scope)
      throw new CliError(`backup ${b.name} is in the shared repository ${b.spec.repository} (made before key scopes): open it with the master secret itself`);
    scope = b.spec.scope;
    repository = join(b.spec.repository, scope);
  }
  const file = o.masterFile ?? join(dataRoot(), 'backup-passphrase');
  let master: string;
  try {
    master = readFileSync(file, 'utf8').trim();
  } catch {
    throw new CliError(`cannot read the master secret at ${file}: run this on the controller's machine, or give --master-file`);
  }
  const passphrase = scopePassphrase(master, scope);
  if (ctx.json) return printJson({ scope, repository, passphrase });
  printDetails({ scope, repository: repository ?? `<the cluster's repository>/${scope}`, passphrase });
}
