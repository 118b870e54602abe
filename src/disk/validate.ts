/**
 * Consistency rules between the block maps and the allocation bitmap. Pure: used by `disk check`
 * to report, and by the engine at open to refuse (or, when repairing, to fix) a damaged disk.
 */
import type { BlockMap } from './block-map.ts';
import { ZERO_BLOCK } from './format.ts';

export interface MapSource {
  /** "head" or "snapshot <name>". */
  name: string;
  map: BlockMap;
  /** File offset of the table this map was loaded from, for reports. */
  tableOffset?: number;
}

export interface Finding {
  severity: 'error' | 'warning' | 'note';
  message: string;
  /** File offset the finding is about, when there is one. */
  fileOffset?: number;
}

interface AllocationView {
  blockCount: number;
  isAllocated(p: number): boolean;
}

interface Validation {
  findings: Finding[];
  /** Map entries that cannot be right (out of range, or a second owner in the same map). */
  badEntries: { source: MapSource; v: number; p: number }[];
  /** Blocks in use but marked free: the allocator could hand them out again. */
  inUseButFree: number[];
  /** Blocks marked in use that nothing references: lost space. */
  leaked: number[];
}

const MAX_LISTED = 20;

export function validateMaps(sources: MapSource[], alloc: AllocationView, metadataBlocks: Set<number>, virtualBlocks: number, hasBacking: boolean): Validation {
  const findings: Finding[] = [];
  const badEntries: Validation['badEntries'] = [];
  const referenced = new Uint8Array(alloc.blockCount);
  let listed = 0;
  const bad = (source: MapSource, v: number, p: number, why: string) => {
    badEntries.push({ source, v, p });
    if (listed++ < MAX_LISTED)
      findings.push({ severity: 'error', message: `${source.name} map: virtual block ${v} -> physical block ${p}: ${why}`, fileOffset: source.tableOffset });
  };
  // One byte per physical block, reused per map: a Map of owners would cost ~60 bytes per entry.
  const seen = new Uint8Array(alloc.blockCount);
  for (const src of sources) {
    seen.fill(0);
    src.map.forEach((v, p) => {
      if (v >= virtualBlocks) return bad(src, v, p, `virtual block beyond the disk's ${virtualBlocks} blocks`);
      if (p === ZERO_BLOCK) {
        if (!hasBacking)
          findings.push({ severity: 'warning', message: `${src.name} map: virtual block ${v} is marked zero on a disk without a backing disk (harmless)` });
        return;
      }
      if (p >= alloc.blockCount) return bad(src, v, p, `physical block beyond the data area (${alloc.blockCount} blocks)`);
      if (metadataBlocks.has(p)) return bad(src, v, p, 'physical block holds metadata');
      if (seen[p]) return bad(src, v, p, 'physical block mapped twice in the same map');
      seen[p] = 1;
      referenced[p] = 1;
    });
  }
  if (listed > MAX_LISTED) findings.push({ severity: 'error', message: `... and ${listed - MAX_LISTED} more bad map entries` });
  for (const p of metadataBlocks) if (p < referenced.length) referenced[p] = 1;

  const inUseButFree: number[] = [];
  const leaked: number[] = [];
  for (let p = 0; p < alloc.blockCount; p++) {
    const inUse = referenced[p] === 1;
    const marked = alloc.isAllocated(p);
    if (inUse && !marked) inUseButFree.push(p);
    else if (!inUse && marked) leaked.push(p);
  }
  if (inUseButFree.length) {
    findings.push({
      severity: 'error',
      message: `${inUseButFree.length} block(s) in use but marked free in the bitmap (could be handed out twice): ${inUseButFree.slice(0, MAX_LISTED).join(', ')}${inUseButFree.length > MAX_LISTED ? ', ...' : ''}`,
    });
  }
  if (leaked.length) {
    findings.push({
      severity: 'warning',
      message: `${leaked.length} block(s) marked in use but referenced by nothing (space lost, data safe): ${leaked.slice(0, MAX_LISTED).join(', ')}${leaked.length > MAX_LISTED ? ', ...' : ''}`,
    });
  }
  return { findings, badEntries, inUseButFree, leaked };
}
