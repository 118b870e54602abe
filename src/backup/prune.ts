/**
 * Retention and pruning. `selectKeep` is the pure rule (as restic's `forget`): keep the newest
 * `last` snapshots, and the newest snapshot of each of the last `daily` days, `weekly` ISO weeks and
 * `monthly` months that have one. As in restic, the rules apply to each group of snapshots on its
 * own (`planRetention`): by default one group per host and source (the paths, or the disk or
 * volume), so a backup of /etc never counts against a backup of a disk.
 * `prune` removes the other snapshots and the data only they used:
 * packs nobody uses are deleted, packs partly used are rewritten with what is still used. The new
 * packs and index are written before anything old is deleted, so an interruption loses nothing.
 */
import { manifestBlobs } from './bmr.ts';
import type { Repository, SnapshotRecord } from './repository.ts';
import { decodeTree } from './tree.ts';

export interface Retention {
  last?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, '0')}`;
}

const BUCKETS: Record<Exclude<keyof Retention, 'last'>, (d: Date) => string> = {
  daily: (d) => d.toISOString().slice(0, 10),
  weekly: isoWeek,
  monthly: (d) => d.toISOString().slice(0, 7),
};

export function selectKeep(snaps: { id: string; time: string }[], r: Retention): Map<string, string[]> {
  const rules = Object.entries(r).filter(([, n]) => n !== undefined);
  if (!rules.length)
    throw new Error(
      'give at least one retention rule (--keep-last, --keep-daily, --keep-weekly, --keep-monthly): pruning with none would delete every snapshot',
    );
  for (const [k, n] of rules) if (!Number.isInteger(n) || n < 0) throw new Error(`--keep-${k} must be a whole number ≥ 0, got ${String(n)}`);
  const newest = [...snaps].sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id));
  const keep = new Map<string, string[]>();
  const why = (id: string, reason: string) => keep.set(id, [...(keep.get(id) ?? []), reason]);
  newest.slice(0, r.last ?? 0).forEach((s) => why(s.id, 'last'));
  for (const k of ['daily', 'weekly', 'monthly'] as const) {
    let left = r[k] ?? 0;
    let lastBucket: string | undefined;
    for (const s of newest) {
      if (left <= 0) break;
      const b = BUCKETS[k](new Date(s.time));
      if (b === lastBucket) continue;
      lastBucket = b;
      why(s.id, `${k} ${b}`);
      left--;
    }
  }
  return keep;
}

/** What snapshots are grouped by before the rules apply (restic's --group-by; `paths` means the source). */
type GroupField = 'host' | 'paths' | 'tags';
export const DEFAULT_GROUP_BY: GroupField[] = ['host', 'paths'];

/** `host,paths`, `host`, `paths` (or `source`), `tags`, any of them joined by commas, or '' for one group of all. */
export function parseGroupBy(s: string): GroupField[] {
  const out: GroupField[] = [];
  for (const w of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const f = w === 'source' ? 'paths' : w;
    if (f !== 'host' && f !== 'paths' && f !== 'tags')
      throw new Error(`--group-by takes host, paths (or source) and tags, joined by commas ('' for no grouping), not '${w}'`);
    if (!out.includes(f)) out.push(f);
  }
  return out;
}

/**
 * What a snapshot is of: the disk or volume it recorded, or its paths. Disk snapshots made before
 * the source was recorded name their filesystems' paths (/p1, ...), so they are told apart from
 * file backups of the same paths.
 */
export function sourceOf(s: Pick<SnapshotRecord, 'paths' | 'source' | 'manifest'>): string {
  if (s.source) return s.source;
  const disk = (s.manifest as { kind?: string } | undefined)?.kind === 'disk-image';
  return `${disk ? 'disk ' : ''}${s.paths.join(',')}`;
}

export interface RetentionGroup {
  /** The group's values of the grouping fields. */
  host?: string;
  source?: string;
  tags?: string[];
  keep: { id: string; time: string; reasons: string[] }[];
  remove: { id: string; time: string }[];
}

type Groupable = Pick<SnapshotRecord, 'time' | 'hostname' | 'paths' | 'tags' | 'source' | 'manifest'> & { id: string };

/** The rules applied to each group on its own; groups and their snapshots oldest first. */
export function planRetention(snaps: Groupable[], r: Retention, groupBy: GroupField[] = DEFAULT_GROUP_BY): RetentionGroup[] {
  const groups = new Map<string, { head: Omit<RetentionGroup, 'keep' | 'remove'>; snaps: Groupable[] }>();
  for (const s of [...snaps].sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id))) {
    const head: Omit<RetentionGroup, 'keep' | 'remove'> = {};
    if (groupBy.includes('host')) head.host = s.hostname;
    if (groupBy.includes('paths')) head.source = sourceOf(s);
    if (groupBy.includes('tags')) head.tags = [...s.tags].sort();
    const key = JSON.stringify(head);
    const g = groups.get(key) ?? { head, snaps: [] };
    g.snaps.push(s);
    groups.set(key, g);
  }
  // The rules are checked even when there is nothing to apply them to.
  if (!groups.size) selectKeep([], r);
  return [...groups.values()].map(({ head, snaps: list }) => {
    const keep = selectKeep(list, r);
    return {
      ...head,
      keep: list.filter((s) => keep.has(s.id)).map((s) => ({ id: s.id, time: s.time, reasons: keep.get(s.id)! })),
      remove: list.filter((s) => !keep.has(s.id)).map((s) => ({ id: s.id, time: s.time })),
    };
  });
}

interface PruneResult {
  /** Per group: what stays and why, what goes. */
  groups: RetentionGroup[];
  kept: { id: string; reasons: string[] }[];
  removed: string[];
  packsDeleted: number;
  packsRewritten: number;
  bytesFreed: number;
}

/** Blobs the snapshots reach: their trees, every file's content, and their BMR manifests' raw areas. */
async function usedBlobs(repo: Repository, snaps: { tree: string; manifest?: unknown }[]): Promise<Set<string>> {
  const used = new Set<string>();
  for (const s of snaps) for (const b of manifestBlobs(s.manifest)) for (const id of b.ids) used.add(id);
  const walk = async (id: string): Promise<void> => {
    if (used.has(id)) return;
    used.add(id);
    for (const n of decodeTree(await repo.loadBlob(id)).nodes) {
      for (const c of n.content ?? []) used.add(c);
      if (n.subtree) await walk(n.subtree);
    }
  };
  for (const s of snaps) await walk(s.tree);
  return used;
}

export async function prune(repo: Repository, r: Retention, opts: { dryRun?: boolean; groupBy?: GroupField[] } = {}): Promise<PruneResult> {
  const snaps = await repo.snapshots();
  const groups = planRetention(snaps, r, opts.groupBy);
  const keep = new Set(groups.flatMap((g) => g.keep.map((k) => k.id)));
  const removed = groups.flatMap((g) => g.remove.map((x) => x.id));
  const result: PruneResult = {
    groups,
    kept: groups.flatMap((g) => g.keep.map((k) => ({ id: k.id, reasons: k.reasons }))),
    removed,
    packsDeleted: 0,
    packsRewritten: 0,
    bytesFreed: 0,
  };
  if (opts.dryRun) return result;
  for (const id of removed) await repo.removeSnapshot(id);

  const used = await usedBlobs(
    repo,
    snaps.filter((s) => keep.has(s.id)),
  );
  const byPack = new Map<string, { used: string[]; unused: number }>();
  for (const e of repo.allEntries()) {
    const p = byPack.get(e.pack) ?? { used: [], unused: 0 };
    if (used.has(e.id)) p.used.push(e.id);
    else p.unused += e.length;
    byPack.set(e.pack, p);
  }
  const sizes = new Map((await repo.storage.list('data')).map((f) => [f.name, f.size]));
  const doomed: string[] = [];
  for (const [pack, p] of byPack) {
    if (!p.unused) continue;
    doomed.push(pack);
    if (p.used.length) result.packsRewritten++;
    else result.packsDeleted++;
  }
  const before = [...sizes.values()].reduce((a, b) => a + b, 0);
  await repo.rewrite(doomed, used);
  const after = (await repo.storage.list('data')).reduce((a, f) => a + f.size, 0);
  result.bytesFreed = before - after;
  return result;
}
