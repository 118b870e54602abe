/**
 * Retention and pruning. `selectKeep` is the pure rule (as restic's `forget`): keep the newest
 * `last` snapshots, and the newest snapshot of each of the last `daily` days, `weekly` ISO weeks and
 * `monthly` months that have one. `prune` removes the other snapshots and the data only they used:
 * packs nobody uses are deleted, packs partly used are rewritten with what is still used. The new
 * packs and index are written before anything old is deleted, so an interruption loses nothing.
 */
import { manifestBlobs } from './bmr.ts';
import type { Repository } from './repository.ts';
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
  if (!rules.length) throw new Error('give at least one retention rule (--keep-last, --keep-daily, --keep-weekly, --keep-monthly): pruning with none would delete every snapshot');
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

export interface PruneResult {
  kept: { id: string; reasons: string[] }[];
  removed: string[];
  packsDeleted: number;
  packsRewritten: number;
  bytesFreed: number;
}

/** Blobs the snapshots reach: their trees, every file's content, and their BMR manifests' raw areas. */
export async function usedBlobs(repo: Repository, snaps: { tree: string; manifest?: unknown }[]): Promise<Set<string>> {
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

export async function prune(repo: Repository, r: Retention, opts: { dryRun?: boolean } = {}): Promise<PruneResult> {
  const snaps = await repo.snapshots();
  const keep = selectKeep(snaps, r);
  const removed = snaps.filter((s) => !keep.has(s.id)).map((s) => s.id);
  const result: PruneResult = { kept: [...keep].map(([id, reasons]) => ({ id, reasons })), removed, packsDeleted: 0, packsRewritten: 0, bytesFreed: 0 };
  if (opts.dryRun) return result;
  for (const id of removed) await repo.removeSnapshot(id);

  const used = await usedBlobs(repo, snaps.filter((s) => keep.has(s.id)));
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
