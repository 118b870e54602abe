/**
 * What bench:disk measures. A round serves each target twice, one session per cache mode, each on
 * a fresh image; a session runs its steps in order on disjoint regions of that image, so every
 * allocating step writes where nothing was written before, and overwrite/read steps run on the
 * region the fill step wrote. Between steps the server gets an NBD FLUSH (write-back) and the
 * machine a sync(2), so no step pays for the dirty data of the one before.
 */
import type { Cache } from './targets.ts';
import type { FioJob } from './fio.ts';

const K = 1024;
const M = K * K;
const G = K * M;

export interface Step {
  /** Row key (a measured step) or undefined (preparation: warm-up, fill). */
  row?: string;
  job: FioJob;
  /** Flush, sync(2) and empty the page cache before this step. */
  cold?: boolean;
}

export interface Row {
  key: string;
  mode: string;
  title: string;
}

export const ROWS: Row[] = [
  { key: 'wt_alloc_qd1', mode: 'write-through', title: '4K random write QD1, allocating' },
  { key: 'wt_alloc_qd32', mode: 'write-through', title: '4K random write QD32, allocating' },
  { key: 'wt_over_qd1', mode: 'write-through', title: '4K random write QD1, overwrite' },
  { key: 'wt_over_qd32', mode: 'write-through', title: '4K random write QD32, overwrite' },
  { key: 'wt_seq_1m', mode: 'write-through', title: '1 MiB sequential write QD4, overwrite' },
  { key: 'f32_alloc_qd32', mode: 'write-back, flush every 32 writes', title: '4K random write QD32, allocating' },
  { key: 'f32_over_qd32', mode: 'write-back, flush every 32 writes', title: '4K random write QD32, overwrite' },
  { key: 'wb_alloc_qd1', mode: 'write-back, no flush', title: '4K random write QD1, allocating' },
  { key: 'wb_alloc_qd32', mode: 'write-back, no flush', title: '4K random write QD32, allocating' },
  { key: 'wb_over_qd1', mode: 'write-back, no flush', title: '4K random write QD1, overwrite' },
  { key: 'wb_over_qd32', mode: 'write-back, no flush', title: '4K random write QD32, overwrite' },
  { key: 'wb_seq_1m', mode: 'write-back, no flush', title: '1 MiB sequential write QD4, overwrite' },
  { key: 'read_qd32', mode: 'read (page cache warm)', title: '4K random read QD32' },
  { key: 'seqread_after_rand', mode: 'read (page cache emptied)', title: '1 MiB sequential read QD4 of a region filled by 4K random writes' },
];

export interface Plan {
  diskSize: number;
  sessions: { cache: Cache; steps: Step[] }[];
  /** Human-readable sizes for the README and the results file. */
  sizes: Record<string, string>;
}

export function plan(quick: boolean): Plan {
  // Regions: warm-up, three never-written ones for the allocating steps, the filled region for
  // overwrites and reads, and the region the fragmentation step fills with random writes.
  const warm = quick ? 16 * M : 512 * M;
  const alloc = quick ? 64 * M : 6 * G;
  const region = quick ? 32 * M : 1 * G;
  const frag = quick ? 16 * M : 1 * G;
  // I/O per step: write-back steps run several times faster, so they get more I/O to run long
  // enough to measure; allocating steps stay well under one write per 64 KiB block of their region.
  const io = quick
    ? { wt1: 2 * M, wt32: 8 * M, wb1: 2 * M, wb32: 8 * M, read: 8 * M, seqWb: region }
    : { wt1: 32 * M, wt32: 128 * M, wb1: 64 * M, wb32: 256 * M, read: 512 * M, seqWb: 2 * region };
  const at = { warm: 0, a1: warm, a2: warm + alloc, a3: warm + 2 * alloc, region: warm + 3 * alloc, frag: warm + 3 * alloc + region };
  const diskSize = Math.ceil((at.frag + frag) / G) * G;
  const rand = (offset: number, size: number, depth: number, ioSize: number, rw: FioJob['rw'] = 'randwrite'): FioJob => ({
    rw,
    bs: 4 * K,
    depth,
    offset,
    size,
    ioSize,
  });
  const seq = (offset: number, size: number, rw: FioJob['rw'], depth: number, ioSize = size): FioJob => ({ rw, bs: M, depth, offset, size, ioSize });
  const warmUp: Step = { job: rand(at.warm, warm, 32, quick ? 2 * M : 16 * M) };
  const fill: Step = { job: seq(at.region, region, 'write', 8) };
  const common = (p: string, qd1: number, qd32: number): Step[] => [
    warmUp,
    { row: `${p}_alloc_qd1`, job: rand(at.a1, alloc, 1, qd1) },
    { row: `${p}_alloc_qd32`, job: rand(at.a2, alloc, 32, qd32) },
    fill,
    { row: `${p}_over_qd1`, job: rand(at.region, region, 1, qd1) },
    { row: `${p}_over_qd32`, job: rand(at.region, region, 32, qd32) },
  ];
  return {
    diskSize,
    sizes: {
      image: `${diskSize / G} GiB`,
      allocRegion: `${alloc / M} MiB`,
      region: `${region / M} MiB`,
      io: Object.entries(io)
        .map(([k, v]) => `${k} ${v / M} MiB`)
        .join(', '),
      frag: `${frag / M} MiB`,
    },
    sessions: [
      { cache: 'writethrough', steps: [...common('wt', io.wt1, io.wt32), { row: 'wt_seq_1m', job: seq(at.region, region, 'write', 4) }] },
      {
        cache: 'writeback',
        steps: [
          ...common('wb', io.wb1, io.wb32),
          { row: 'wb_seq_1m', job: seq(at.region, region, 'write', 4, io.seqWb) },
          { row: 'f32_alloc_qd32', job: { ...rand(at.a3, alloc, 32, io.wb32), flushEvery: 32 } },
          { row: 'f32_over_qd32', job: { ...rand(at.region, region, 32, io.wb32), flushEvery: 32 } },
          { row: 'read_qd32', job: rand(at.region, region, 32, io.read, 'randread') },
          // Every 4 KiB of the region written once, in random order (fio's random map), then read
          // back in order from the device.
          { job: rand(at.frag, frag, 32, frag) },
          { row: 'seqread_after_rand', job: seq(at.frag, frag, 'read', 4), cold: true },
        ],
      },
    ],
  };
}
