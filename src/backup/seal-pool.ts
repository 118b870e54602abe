/**
 * Worker threads for the CPU-heavy half of a backup (seal-worker.ts): sealing single blobs, and
 * backing up whole files. The workers hold the repository's master key (same process, never
 * written anywhere). Files go to the worker with the least work queued.
 */
import { Worker } from 'node:worker_threads';
import type { BlobWrite } from './blob-writes.ts';
import type { ChunkerParams } from './chunker.ts';
import type { Codec } from './pack.ts';
import type { BlobSlot } from './open-blob.ts';
import type { Reply, WorkerData } from './seal-worker.ts';

export interface Sealed {
  codec: Codec;
  sealed: Buffer;
}

interface FileChunk {
  blob: string;
  rawLength: number;
  /** Absent when the chunk was known (the previous version of the file had it). */
  sealed?: Sealed;
}

interface Job {
  worker: number;
  weight: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onChunk?: (c: FileChunk) => void;
}

/** Plain JavaScript that loads tsx, then the worker module. */
const BOOTSTRAP = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { register } = await import(workerData.tsx);
  register();
  const { serve } = await import(workerData.module);
  await serve(parentPort, workerData.data);
  parentPort.postMessage({ ready: true });
})().catch((e) => parentPort.postMessage({ fatal: String((e && e.stack) || e) }));
`;

export class SealPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly jobs = new Map<number, Job>();
  private readonly ready: Promise<void>[] = [];
  private readonly outstanding = new Int32Array(new SharedArrayBuffer(4));
  private next = 0;

  constructor(master: Buffer | undefined, size: number, chunker: ChunkerParams, gear: Uint32Array) {
    const data: WorkerData = { master: master ? new Uint8Array(master) : undefined, chunker, gear, outstanding: this.outstanding.buffer as SharedArrayBuffer };
    const workerData = { tsx: import.meta.resolve('tsx/esm/api'), module: new URL('./seal-worker.ts', import.meta.url).href, data };
    for (let i = 0; i < size; i++) {
      const w = new Worker(BOOTSTRAP, { eval: true, workerData });
      w.unref();
      this.ready.push(
        new Promise((resolve, reject) => {
          w.on('message', (m: Reply | { ready: true } | { fatal: string }) => {
            if ('ready' in m) return resolve();
            if ('fatal' in m) return reject(new Error(`seal worker failed to start: ${m.fatal}`));
            this.onReply(m);
          });
          w.on('error', reject);
        }),
      );
      this.workers.push(w);
      this.load.push(0);
    }
  }

  private onReply(m: Reply): void {
    const job = this.jobs.get(m.id);
    if (!job) return;
    if ('chunk' in m && m.chunk) {
      const c = m.chunk;
      if (c.sealed) {
        Atomics.sub(this.outstanding, 0, Math.ceil(c.sealed.byteLength / 1024));
        Atomics.notify(this.outstanding, 0);
      }
      job.onChunk?.({ blob: c.blob, rawLength: c.rawLength, sealed: c.sealed ? { codec: c.codec!, sealed: Buffer.from(c.sealed) } : undefined });
      if (!m.done) return;
    }
    this.jobs.delete(m.id);
    this.load[job.worker]! -= job.weight;
    if ('error' in m) job.reject(Object.assign(new Error(m.error), { code: m.code }));
    else if ('bytes' in m) job.resolve(m.bytes);
    else if ('written' in m) job.resolve(undefined);
    else if ('sealed' in m) job.resolve({ codec: m.codec, sealed: Buffer.from(m.sealed) } satisfies Sealed);
  }

  start(): Promise<void> {
    return Promise.all(this.ready).then(() => undefined);
  }

  private submit<T>(weight: number, msg: object, transfer: ArrayBuffer[], onChunk?: (c: FileChunk) => void): Promise<T> {
    let worker = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[worker]!) worker = i;
    const id = this.next++;
    this.load[worker]! += weight;
    return new Promise<T>((resolve, reject) => {
      this.jobs.set(id, { worker, weight, resolve: resolve as (v: unknown) => void, reject, onChunk });
      this.workers[worker]!.postMessage({ id, ...msg }, transfer);
    });
  }

  /** Compresses and seals a copy of `plain` (the caller may reuse its buffer at once). */
  seal(plain: Uint8Array): Promise<Sealed> {
    // A copy with a buffer of its own (Buffer#slice would share, and transferring would take the caller's).
    const copy = new Uint8Array(plain).buffer;
    return this.submit<Sealed>(plain.length, { plain: copy }, [copy]);
  }

  /**
   * Backs a file up on a worker: `onChunk` gets its chunks in order; resolves with the bytes read.
   * `known` are blob ids the repository has (the file's previous chunks): those are not sealed again.
   */
  file(path: string, size: number, known: string[], onChunk: (c: FileChunk) => void): Promise<number> {
    return this.submit<number>(size, { file: path, known }, [], onChunk);
  }

  /** Opens, decompresses and checks the given blobs of a pack (whose bytes are handed over), and writes each where `writes` says. */
  writeBlobs(name: string, pack: Buffer, slots: BlobSlot[], writes: BlobWrite[][]): Promise<void> {
    const own =
      pack.byteOffset === 0 && pack.length === pack.buffer.byteLength
        ? (pack.buffer as ArrayBuffer)
        : (pack.buffer.slice(pack.byteOffset, pack.byteOffset + pack.length) as ArrayBuffer);
    return this.submit<void>(pack.length, { pack: own, name, slots, writes }, [own]);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
