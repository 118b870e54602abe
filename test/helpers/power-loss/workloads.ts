/**
 * Workloads for the power-loss simulator: each drives a disk engine through a recorder, naming
 * its requests so the model knows what each sector may read. Small disks and a 64 KiB journal, so
 * checkpoints and journal wrap-around happen within a few hundred requests.
 */
import type { CacheMode, DiskEngine } from '../../../src/disk/engine.ts';
import { requestData, type Request } from './model.ts';
import type { IoRecorder } from './recorder.ts';

export class Driver {
  readonly requests = new Map<number, Request>();

  constructor(
    public engine: DiskEngine,
    private readonly rec: IoRecorder,
    /** Request ids of this driver start here (a recovery session continues another's numbering). */
    private next: number,
  ) {}

  private async run(r: Omit<Request, 'id'>, op: (id: number) => Promise<void>): Promise<void> {
    const id = this.next++;
    this.requests.set(id, { id, ...r });
    this.rec.log({ t: 'issue', req: id });
    await op(id);
    this.rec.log({ t: 'ack', req: id });
  }

  write(offset: number, length: number, fua = false): Promise<void> {
    return this.run({ kind: 'write', offset, length, fua }, (id) => this.engine.write(offset, requestData(id, offset, length), fua));
  }

  zero(offset: number, length: number, fua = false): Promise<void> {
    return this.run({ kind: 'zero', offset, length, fua }, () => this.engine.writeZeroes(offset, length, fua));
  }

  trim(offset: number, length: number): Promise<void> {
    return this.run({ kind: 'trim', offset, length, fua: false }, () => this.engine.trim(offset, length));
  }

  flush(): Promise<void> {
    return this.run({ kind: 'flush', offset: 0, length: 0, fua: false }, () => this.engine.flush());
  }

  get nextId(): number {
    return this.next;
  }
}

export interface Workload {
  name: string;
  cache: CacheMode;
  size: number;
  blockSize: number;
  journalSize: number;
  /** The workload; `rand` is seeded. */
  run(d: Driver, rand: () => number): Promise<void>;
  /** What a session after a crash does (a smaller workload of the same shape). */
  recovery(d: Driver, rand: () => number): Promise<void>;
}

const KiB = 1024;
const pick = (rand: () => number, n: number) => Math.floor(rand() * n);

/** Writes of 1-3 blocks anywhere (new blocks and overwrites), zeroes and discards now and then. */
async function mixed(
  d: Driver,
  rand: () => number,
  count: number,
  o: { B: number; blocks: number; fua?: boolean; flushEvery?: number; checkpointEvery?: number },
): Promise<void> {
  for (let i = 1; i <= count; i++) {
    const b = pick(rand, o.blocks - 3);
    const n = 1 + pick(rand, 3);
    const r = rand();
    if (r < 0.08) await d.trim(b * o.B, o.B);
    else if (r < 0.14) await d.zero(b * o.B, n * o.B);
    else await d.write(b * o.B, n * o.B, !!o.fua && rand() < 0.3);
    if (o.flushEvery && i % o.flushEvery === 0) await d.flush();
    if (o.checkpointEvery && i % o.checkpointEvery === 0) await d.engine.checkpointNow();
  }
}

/** `n` writers at once, each on its own quarter of the disk (a VM's queue, or several NBD connections). */
async function concurrent(d: Driver, rand: () => number, rounds: number, o: { B: number; blocks: number; flush: boolean }): Promise<void> {
  const part = Math.floor(o.blocks / 4);
  for (let r = 0; r < rounds; r++) {
    await Promise.all([0, 1, 2, 3].map((w) => d.write((w * part + pick(rand, part - 2)) * o.B, (1 + pick(rand, 2)) * o.B)));
    if (o.flush && r % 4 === 3) await d.flush();
  }
}

const small = { size: 2 << 20, blockSize: 4 * KiB, journalSize: 64 * KiB };
const B = small.blockSize;
const blocks = small.size / B;

export const WORKLOADS: Workload[] = [
  {
    name: 'write-through, one connection, checkpoints',
    cache: 'writethrough',
    ...small,
    run: (d, rand) => mixed(d, rand, 120, { B, blocks, checkpointEvery: 50 }),
    recovery: (d, rand) => mixed(d, rand, 20, { B, blocks }),
  },
  {
    name: 'write-back with FLUSH and FUA',
    cache: 'writeback',
    ...small,
    run: (d, rand) => mixed(d, rand, 120, { B, blocks, fua: true, flushEvery: 7 }),
    recovery: (d, rand) => mixed(d, rand, 20, { B, blocks, fua: true, flushEvery: 5 }),
  },
  {
    name: 'four connections at once, write-back with FLUSH',
    cache: 'writeback',
    ...small,
    run: (d, rand) => concurrent(d, rand, 40, { B, blocks, flush: true }),
    recovery: (d, rand) => concurrent(d, rand, 8, { B, blocks, flush: true }),
  },
  {
    name: 'four connections at once, write-through',
    cache: 'writethrough',
    ...small,
    run: (d, rand) => concurrent(d, rand, 40, { B, blocks, flush: false }),
    recovery: (d, rand) => concurrent(d, rand, 8, { B, blocks, flush: false }),
  },
  {
    // Issue 17, finding 1's shape: rounds of 1,300 new blocks, each two journal records (a full
    // one of 1,168 blocks' operations in a 64 KiB journal, and the rest). After a crash that tore
    // the first record of the second round and kept its second, the next session writes exactly
    // 1,168 new blocks over the second round's last ones: one record, as long as the torn one and
    // in its place, with the stale second record right behind it.
    name: 'large rounds, write-through',
    cache: 'writethrough',
    size: 16 << 20,
    blockSize: B,
    journalSize: 64 * KiB,
    run: async (d) => {
      for (let r = 0; r < 2; r++) await d.write(r * 1300 * B, 1300 * B);
    },
    recovery: async (d) => {
      await d.write((2600 - 1168) * B, 1168 * B);
    },
  },
];
