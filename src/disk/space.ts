/**
 * Space accounting of a host's volumes: what its file system holds and what its thin volumes may
 * still allocate. Volumes are thin: a volume's file grows as its guest writes new blocks, so the
 * file system must keep room for what every volume may still write, or one guest filling its
 * volume takes the space another guest's next write needs.
 *
 * What a volume may still allocate is an upper bound on its *own* growth, made of
 *   - its data: every block of its virtual size not mapped yet (blocks are allocated whole), and
 *   - its journal (1/256 of the virtual size, 4 to 64 MiB), unless its space is reserved: the
 *     engine reserves it (fallocate) when it creates a disk and when it opens an older one, so it
 *     counts only where the file system cannot preallocate or had no room at the time.
 * It is an approximation, not a guarantee:
 *   - snapshots: a block a snapshot shares is copied on its next overwrite, so a volume with
 *     snapshots may allocate up to its whole size again beyond this figure;
 *   - metadata tables (block maps: 8 bytes per mapped block; the allocation bitmap) are rewritten at
 *     checkpoints and are not counted;
 *   - files that are not volumes (images being downloaded, a backup's scratch files, anything else on
 *     the same file system) take free space the figure does not know about.
 * Pure except for `fileSystemSpace`.
 */
import { statfsSync } from 'node:fs';
import { defaultJournalSize } from './format.ts';

/** One host's disk space as its diskd sees it. */
export interface DiskSpace {
  /** Size of the file system that holds the volumes. */
  totalBytes: number;
  /** Bytes an unprivileged writer may still allocate there (statfs bavail × bsize). */
  freeBytes: number;
  /** Sum of the virtual sizes of the volumes. */
  provisionedBytes: number;
  /** Sum of what the volumes may still allocate (see above). */
  mayAllocateBytes: number;
}

/** Total and free bytes of the file system holding `path` (what `df` shows as size and available). */
export function fileSystemSpace(path: string): { totalBytes: number; freeBytes: number } {
  const s = statfsSync(path);
  return { totalBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

/** What an existing volume may still allocate: its unmapped blocks, and its journal if not reserved (journalBytes 0). */
export function volumeMayAllocate(v: { sizeBytes: number; blockSize: number; usedBytes: number; journalBytes: number }): number {
  const dataBytes = Math.ceil(v.sizeBytes / v.blockSize) * v.blockSize;
  return Math.max(0, dataBytes - v.usedBytes) + v.journalBytes;
}

/** What a volume not made yet may allocate over its life (no block mapped yet, and a journal of the default size). */
export function newVolumeMayAllocate(sizeBytes: number): number {
  return sizeBytes + defaultJournalSize(sizeBytes);
}
