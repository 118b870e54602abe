/**
 * `outrig disk check`: reads a disk file without changing it and names every inconsistency with
 * its location: superblock slots, serialized tables, the journal, the maps and the bitmap.
 * With repair, opens the disk in repair mode (which fixes what validation found) and checks again.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Allocator } from './allocator.ts';
import { BlockFile } from './block-file.ts';
import { BlockMap } from './block-map.ts';
import { crc32 } from './crc.ts';
import { DiskEngine } from './engine.ts';
import { metadataBlocksOf, openBackingLayer } from './layer.ts';
import {
  decodeBitmapTable,
  decodeSnapshotTable,
  decodeSuperblock,
  journalSeed,
  Op,
  SUPERBLOCK_SIZE,
  SUPERBLOCK_SLOTS,
  type Extent,
  type FormatError,
  type SnapshotEntry,
  type Superblock,
} from './format.ts';
import { Journal } from './journal.ts';
import { readMapTable } from './map-table.ts';
import { validateMaps, type Finding, type MapSource } from './validate.ts';

export interface CheckReport {
  file: string;
  /** No errors (warnings and notes may remain). */
  clean: boolean;
  errors: number;
  warnings: number;
  findings: Finding[];
  stats?: { generation: number; mappedBlocks: number; dataAreaBlocks: number; snapshots: number; journalRecords: number };
  repaired?: boolean;
}

function tableAt(file: BlockFile, sb: Superblock, e: Extent, what: string, findings: Finding[]): Buffer | null {
  if (!e.bytes) return null;
  const at = sb.dataOffset + e.start * sb.blockSize;
  if (at + e.bytes > file.size) {
    findings.push({ severity: 'error', message: `${what} runs past the end of the file (${e.bytes} bytes at block ${e.start})`, fileOffset: at });
    return null;
  }
  const b = file.read(at, e.bytes);
  const got = crc32(b);
  if (got !== e.crc) {
    findings.push({ severity: 'error', message: `${what} checksum mismatch (stored ${e.crc.toString(16)}, computed ${got.toString(16)})`, fileOffset: at });
    return null;
  }
  return b;
}

export function checkFile(path: string): CheckReport {
  const findings: Finding[] = [];
  const report = (stats?: CheckReport['stats']): CheckReport => {
    const errors = findings.filter((f) => f.severity === 'error').length;
    return { file: path, clean: errors === 0, errors, warnings: findings.filter((f) => f.severity === 'warning').length, findings, stats };
  };
  if (!existsSync(path)) {
    findings.push({ severity: 'error', message: 'file does not exist' });
    return report();
  }
  const lock = `${path}.lock`;
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    let alive: boolean;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch {
      alive = false;
    }
    findings.push(
      alive
        ? { severity: 'warning', message: `the disk is open for writing by process ${pid}; what is read may be moving` }
        : { severity: 'note', message: `a stale lock of process ${pid} is left from an unclean stop` },
    );
  }
  const file = new BlockFile(path, true);
  try {
    // Superblocks: the valid slot with the higher generation is current.
    let sb: Superblock | null = null;
    for (let slot = 0; slot < SUPERBLOCK_SLOTS.length; slot++) {
      const at = SUPERBLOCK_SLOTS[slot]!;
      const raw = file.read(at, SUPERBLOCK_SIZE);
      if (raw.every((x) => x === 0)) {
        findings.push({ severity: 'note', message: `superblock slot ${slot} has never been written`, fileOffset: at });
        continue;
      }
      try {
        const s = decodeSuperblock(raw, at);
        if (!sb || s.generation > sb.generation) sb = s;
      } catch (e) {
        findings.push({ severity: 'warning', message: `superblock slot ${slot} is damaged: ${(e as Error).message}` });
      }
    }
    if (!sb) {
      findings.push({ severity: 'error', message: 'no valid superblock: this is not an Outrig disk, or both copies are damaged', fileOffset: 0 });
      return report();
    }
    if (file.size < sb.dataOffset)
      findings.push({ severity: 'error', message: `file is ${file.size} bytes, shorter than its own data offset ${sb.dataOffset}` });

    // Tables.
    const B = sb.blockSize;
    let mapRaw: boolean = !sb.map.bytes;
    let map = new BlockMap();
    if (sb.map.bytes) {
      try {
        map = readMapTable(file, sb.dataOffset + sb.map.start * B, sb.map, 'block map table');
        mapRaw = true;
      } catch (e) {
        findings.push({ severity: 'error', message: (e as Error).message, fileOffset: (e as FormatError).fileOffset });
      }
    }
    const bitRaw = tableAt(file, sb, sb.bitmap, 'bitmap table', findings);
    const snapRaw = tableAt(file, sb, sb.snapshots, 'snapshot table', findings);
    let bits: { bits: Uint8Array; count: number } = { bits: new Uint8Array(0), count: 0 };
    let snaps: SnapshotEntry[] = [];
    try {
      if (bitRaw) bits = decodeBitmapTable(bitRaw, sb.dataOffset + sb.bitmap.start * B);
      if (snapRaw) snaps = decodeSnapshotTable(snapRaw, sb.dataOffset + sb.snapshots.start * B);
    } catch (e) {
      findings.push({ severity: 'error', message: (e as Error).message });
    }
    if (!mapRaw) return report();

    // Journal: replay in memory, as an open would.
    const alloc = new Allocator(bits.bits, Math.max(bits.count, sb.blockCount));
    const seed = journalSeed(sb.uuid);
    const r = Journal.replay(file, sb.journalOffset, sb.journalSize, sb.journalHead, sb.checkpointLsn, seed, (ops) => {
      for (const o of ops) {
        if (o.op === Op.Map) map.set(o.v, o.p);
        else if (o.op === Op.Unmap) map.delete(o.v);
        else if (o.op === Op.Alloc) alloc.setAllocated(o.p);
        else alloc.setFree(o.p);
      }
    });
    if (r.records) findings.push({ severity: 'note', message: `journal: ${r.records} record(s) after the checkpoint replayed` });
    if (r.stoppedBecause)
      findings.push({
        severity: 'note',
        message: `journal ends: ${r.stoppedBecause} (an interrupted last write is expected after a crash and is ignored)`,
        fileOffset: sb.journalOffset + r.pos,
      });
    // Whole records numbered past the end of the log: a crashed session's unsynced tail, as open sees it.
    const unreplayed = Journal.unreplayedRecords(file, sb.journalOffset, sb.journalSize, seed, sb.journalHead, r);
    if (unreplayed.length) {
      findings.push({
        severity: 'note',
        message: `journal: ${unreplayed.length} record(s) past the end of the log, first at journal offset ${unreplayed[0]}, were written after the last completed flush and never acknowledged; open ignores them and the next writable open erases them`,
        fileOffset: sb.journalOffset + unreplayed[0]!,
      });
    }

    // Maps against the bitmap.
    const sources: MapSource[] = [{ name: 'head', map, tableOffset: sb.map.bytes ? sb.dataOffset + sb.map.start * B : undefined }];
    for (const s of snaps) {
      const at = sb.dataOffset + s.map.start * B;
      try {
        sources.push({ name: `snapshot ${s.name}`, map: readMapTable(file, at, s.map, `map of snapshot ${s.name}`), tableOffset: at });
      } catch (e) {
        findings.push({ severity: 'error', message: (e as Error).message, fileOffset: at });
      }
    }
    const v = validateMaps(sources, alloc, metadataBlocksOf(sb, snaps), Math.ceil(sb.virtualSize / B), !!sb.backing);
    findings.push(...v.findings);

    if (sb.backing) {
      try {
        // Following the chain verifies each backing disk's UUID and snapshot.
        for (const f of openBackingLayer(path, sb.backing).owned) f.close();
      } catch (e) {
        findings.push({ severity: 'error', message: `backing disk: ${(e as Error).message}` });
      }
    }
    return report({ generation: sb.generation, mappedBlocks: map.size, dataAreaBlocks: alloc.blockCount, snapshots: snaps.length, journalRecords: r.records });
  } finally {
    file.close();
  }
}

/** Checks; with repair, fixes what can be fixed through a repairing open and checks again. */
export async function checkDisk(path: string, opts: { repair?: boolean } = {}): Promise<CheckReport> {
  const first = checkFile(path);
  if (!opts.repair) return first;
  const fixable = first.findings.some((f) => f.severity !== 'note') || first.findings.some((f) => /journal ends|never been written/.test(f.message));
  if (!fixable) return first;
  try {
    const e = await DiskEngine.open(path, { repair: true });
    await e.commitRepair();
    await e.close();
  } catch (err) {
    return {
      ...first,
      findings: [...first.findings, { severity: 'error', message: `repair failed: ${(err as Error).message}` }],
      clean: false,
      repaired: false,
    };
  }
  return { ...checkFile(path), repaired: true };
}
