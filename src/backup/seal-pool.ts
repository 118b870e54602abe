/**
 * Compression and sealing on worker threads: the CPU-heavy half of storing a blob (zstd and
 * AES-GCM) runs on every core while the main thread reads, chunks and hashes. The workers hold the
 * repository's master key (same process, never written anywhere).
 */
import { Worker } from 'node:worker_threads';
import type { Codec } from './pack.ts';

export interface Sealed {
  codec: Codec;
  sealed: Buffer;
}

interface Job {
  resolve: (s: Sealed) => void;
  reject: (e: Error) => void;
}

/** The worker's code: plain JavaScript that loads tsx, then the TypeScript modules it needs. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  const { register } = await import(workerData.tsx);
  register();
  const { encode, loadCodec } = await import(workerData.codec);
  const { AeadCrypter, PlainCrypter } = await import(workerData.crypto);
  await loadCodec();
  const crypter = workerData.master ? new AeadCrypter(Buffer.from(workerData.master)) : new PlainCrypter();
  parentPort.on('message', ({ id, plain }) => {
    try {
      const { codec, data } = encode(new Uint8Array(plain));
      const sealed = crypter.seal(data);
      const out = sealed.buffer.slice(sealed.byteOffset, sealed.byteOffset + sealed.length);
      parentPort.postMessage({ id, codec, sealed: out }, [out]);
    } catch (e) {
      parentPort.postMessage({ id, error: String(e && e.message || e) });
    }
  });
  parentPort.postMessage({ ready: true });
})().catch((e) => parentPort.postMessage({ fatal: String(e && e.stack || e) }));
`;

export class SealPool {
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private readonly ready: Promise<void>[] = [];
  private next = 0;
  private turn = 0;

  constructor(master: Buffer | undefined, size: number) {
    const data = { master: master ? new Uint8Array(master) : undefined, tsx: import.meta.resolve('tsx/esm/api'), codec: new URL('./codec.ts', import.meta.url).href, crypto: new URL('./crypto.ts', import.meta.url).href };
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: data });
      w.unref();
      this.ready.push(
        new Promise((resolve, reject) => {
          w.on('message', (m: { ready?: boolean; fatal?: string; id?: number; codec?: Codec; sealed?: ArrayBuffer; error?: string }) => {
            if (m.ready) return resolve();
            if (m.fatal) return reject(new Error(`seal worker failed to start: ${m.fatal}`));
            const job = this.jobs.get(m.id!);
            this.jobs.delete(m.id!);
            if (m.error) job?.reject(new Error(m.error));
            else job?.resolve({ codec: m.codec!, sealed: Buffer.from(m.sealed!) });
          });
          w.on('error', reject);
        }),
      );
      this.workers.push(w);
    }
  }

  start(): Promise<void> {
    return Promise.all(this.ready).then(() => undefined);
  }

  /** Compresses and seals a copy of `plain` (the caller may reuse its buffer at once). */
  seal(plain: Uint8Array): Promise<Sealed> {
    // A copy with a buffer of its own (Buffer#slice would share, and transferring would take the caller's).
    const copy = new Uint8Array(plain).buffer;
    const id = this.next++;
    const w = this.workers[this.turn++ % this.workers.length]!;
    return new Promise<Sealed>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      w.postMessage({ id, plain: copy }, [copy]);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
