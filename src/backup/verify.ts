/**
 * `verify`: re-reads every pack, checks its hash, opens and re-hashes every blob, then walks every
 * snapshot and names the ones that refer to a damaged or missing blob, with the file it belongs to.
 */
import { manifestBlobs } from './bmr.ts';
import { openBlob } from './open-blob.ts';
import type { IndexEntry, Repository } from './repository.ts';
import { packId } from './pack.ts';
import { decodeTree } from './tree.ts';

interface VerifyReport {
  packs: number;
  blobs: number;
  bytes: number;
  damagedPacks: { pack: string; reason: string }[];
  badBlobs: { id: string; pack: string; reason: string }[];
  snapshots: { id: string; time: string; ok: boolean; problems: string[] }[];
}

export async function verifyRepository(repo: Repository, onProgress?: (packsDone: number, packsTotal: number, bytes: number) => void): Promise<VerifyReport> {
  const report: VerifyReport = { packs: 0, blobs: 0, bytes: 0, damagedPacks: [], badBlobs: [], snapshots: [] };
  const byPack = new Map<string, IndexEntry[]>();
  for (const e of repo.allEntries()) byPack.set(e.pack, [...(byPack.get(e.pack) ?? []), e]);
  const present = new Set((await repo.storage.list('data')).map((f) => f.name));
  const bad = new Map<string, string>();
  let done = 0;
  for (const [pack, entries] of byPack) {
    if (!present.has(pack)) {
      report.damagedPacks.push({ pack, reason: 'missing' });
      for (const e of entries) bad.set(e.id, `pack ${pack.slice(0, 12)} is missing`);
      continue;
    }
    const data = await repo.storage.read('data', pack);
    report.packs++;
    report.bytes += data.length;
    if (packId(data) !== pack) report.damagedPacks.push({ pack, reason: 'its content does not hash to its name' });
    for (const e of entries) {
      report.blobs++;
      try {
        openBlob(repo.crypter, e, data, pack);
      } catch (err) {
        bad.set(e.id, (err as Error).message);
        report.badBlobs.push({ id: e.id, pack, reason: (err as Error).message });
      }
    }
    onProgress?.(++done, byPack.size, report.bytes);
  }

  for (const s of await repo.snapshots()) {
    const problems: string[] = [];
    const walk = async (treeId: string, dir: string): Promise<void> => {
      if (bad.has(treeId) || !repo.has(treeId)) {
        problems.push(`${dir}: its directory listing (tree ${treeId.slice(0, 12)}) ${bad.get(treeId) ?? 'is not in the index'}`);
        return;
      }
      for (const n of decodeTree(await repo.loadBlob(treeId)).nodes) {
        const path = dir === '/' ? `/${n.name}` : `${dir}/${n.name}`;
        if (n.subtree) await walk(n.subtree, path);
        for (const id of n.content ?? []) {
          if (bad.has(id)) problems.push(`${path}: ${bad.get(id)!}`);
          else if (!repo.has(id)) problems.push(`${path}: blob ${id.slice(0, 12)} is not in the index`);
        }
      }
    };
    await walk(s.tree, '/');
    for (const b of manifestBlobs(s.manifest)) {
      for (const id of b.ids) {
        if (bad.has(id)) problems.push(`${b.what}: ${bad.get(id)!}`);
        else if (!repo.has(id)) problems.push(`${b.what}: blob ${id.slice(0, 12)} is not in the index`);
      }
    }
    report.snapshots.push({ id: s.id, time: s.time, ok: problems.length === 0, problems });
  }
  return report;
}
