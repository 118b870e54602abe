/**
 * The first half of a checkpoint: the head map, the snapshot table and the bitmap written to new
 * extents, in runs of free blocks inside the data area where there are some, else past its end;
 * never over the current tables (still allocated) nor over blocks whose freeing is not yet durable.
 * Returns the superblock that refers to them (the caller syncs, then writes it) and every block
 * free once it is in force. If a table cannot be written (a full file system) its blocks go back
 * and the error is thrown: nothing refers to them until the superblock flips.
 */
import type { Allocator } from './allocator.ts';
import type { BlockFile } from './block-file.ts';
import type { BlockMap } from './block-map.ts';
import { crc32 } from './crc.ts';
import { encodeBitmapTable, encodeSnapshotTable, type Extent, type SnapshotEntry, type Superblock } from './format.ts';
import { mapTableBytes, writeMapTable } from './map-table.ts';

export function writeCheckpointTables(t: {
  file: BlockFile;
  alloc: Allocator;
  sb: Superblock;
  map: BlockMap;
  snapshots: SnapshotEntry[];
  /** Blocks freed since the last checkpoint (their records are durable, or this checkpoint makes them so). */
  freeing: number[];
}): { next: Superblock; freed: number[] } {
  const physical = (p: number) => t.sb.dataOffset + p * t.sb.blockSize;
  const sb = t.sb;
  const B = sb.blockSize;
  const old = [sb.map, sb.bitmap, sb.snapshots];
  const mapBytes = mapTableBytes(t.map);
  const snapBytes = encodeSnapshotTable(t.snapshots);
  const freed: number[] = [];
  const blocksFor = (n: number) => Math.ceil(n / B);
  // Until the superblock flips nothing refers to the new tables: if they cannot be written (a
  // full file system), their blocks go back and the old checkpoint and journal stay in force.
  const runs: [number, number][] = [];
  const run = (n: number, atEnd: boolean): number => {
    let start = atEnd ? -1 : t.alloc.allocateRunInside(n);
    if (start < 0) start = t.alloc.allocateRunAtEnd(n);
    runs.push([start, n]);
    return start;
  };
  let next: Superblock;
  try {
    const mapStart = run(blocksFor(mapBytes), false);
    const snapStart = run(blocksFor(snapBytes.length), false);
    // The bitmap covers its own blocks: inside the area its size is known; at the end, grow
    // until its size settles.
    let bitmapBlocks = blocksFor(8 + Math.ceil(t.alloc.blockCount / 8));
    let bitmapStart = t.alloc.allocateRunInside(bitmapBlocks);
    if (bitmapStart >= 0) runs.push([bitmapStart, bitmapBlocks]);
    else {
      while (blocksFor(8 + Math.ceil((t.alloc.blockCount + bitmapBlocks) / 8)) > bitmapBlocks) bitmapBlocks++;
      bitmapStart = run(bitmapBlocks, true);
    }
    const oldBlocks: number[] = [];
    for (const e of old) for (let i = 0; i < e.blocks; i++) oldBlocks.push(e.start + i);
    freed.push(...t.freeing, ...oldBlocks);
    const bitmapBytes = encodeBitmapTable(t.alloc.snapshotBits(freed), t.alloc.blockCount);
    const extent = (start: number, bytes: Buffer): Extent => ({ start, blocks: blocksFor(bytes.length), bytes: bytes.length, crc: crc32(bytes) });
    const mapCrc = writeMapTable(t.file, physical(mapStart), t.map);
    next = {
      ...sb,
      generation: sb.generation + 1,
      blockCount: t.alloc.blockCount,
      map: { start: mapStart, blocks: blocksFor(mapBytes), bytes: mapBytes, crc: mapCrc },
      snapshots: extent(snapStart, snapBytes),
      bitmap: extent(bitmapStart, bitmapBytes),
    };
    t.file.write(physical(snapStart), snapBytes);
    t.file.write(physical(bitmapStart), bitmapBytes);
  } catch (e) {
    for (const [start, n] of runs) for (let i = 0; i < n; i++) t.alloc.setFree(start + i);
    throw e;
  }
  return { next, freed };
}
