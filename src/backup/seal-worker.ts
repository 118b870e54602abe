/**
 * A seal worker: compresses and seals blobs, and backs up whole files (read, chunk, hash,
 * compress, seal), so a backup's heavy work runs on every core and the main thread only walks the
 * tree and writes packs. Sealed chunks waiting for the main thread are bounded through a shared
 * counter: a worker that is ahead waits instead of filling memory.
 */
import type { MessagePort } from 'node:worker_threads';
import { encode, loadCodec, looksCompressed } from './codec.ts';
import { openBlob, type BlobSlot } from './open-blob.ts';
import { AeadCrypter, PlainCrypter, type Crypter } from './crypto.ts';
import type { ChunkerParams } from './chunker.ts';
import { writeBlob, type BlobWrite } from './blob-writes.ts';
import { chunkBuffer, chunksOf } from './file-chunks.ts';

export interface WorkerData {
  master?: Uint8Array;
  chunker: ChunkerParams;
  gear: Uint32Array;
  /** KiB of sealed data posted and not yet taken by the main thread, shared by all workers. */
  outstanding: SharedArrayBuffer;
}

/** Above this much sealed data waiting, workers pause. */
const OUTSTANDING_LIMIT_KIB = 128 * 1024;

export type Request =
  | { id: number; plain: ArrayBuffer }
  | { id: number; file: string; known: string[] }
  | { id: number; pack: ArrayBuffer; name: string; slots: BlobSlot[]; writes: BlobWrite[][] };

interface ChunkReply {
  blob: string;
  rawLength: number;
  codec?: 'none' | 'zstd';
  sealed?: ArrayBuffer;
}

export type Reply =
  | { id: number; codec: 'none' | 'zstd'; sealed: ArrayBuffer }
  | { id: number; chunk: ChunkReply; done?: undefined }
  | { id: number; chunk?: ChunkReply; done: true; bytes: number }
  | { id: number; written: true }
  | { id: number; error: string; code?: string };

export async function serve(port: MessagePort, data: WorkerData): Promise<void> {
  await loadCodec();
  const crypter: Crypter = data.master ? new AeadCrypter(Buffer.from(data.master)) : new PlainCrypter();
  const outstanding = new Int32Array(data.outstanding);
  const buf = chunkBuffer(data.chunker);
  const post = (r: Reply, transfer: ArrayBuffer[] = []) => port.postMessage(r, transfer);
  const seal = (plain: Uint8Array, compressed = false) => {
    const { codec, data: packed } = encode(plain, compressed);
    const s = crypter.seal(packed);
    // Transferable only when the Buffer owns its whole memory (small ones share Node's pool).
    const own = s.byteOffset === 0 && s.length === s.buffer.byteLength;
    return { codec, sealed: (own ? s.buffer : s.buffer.slice(s.byteOffset, s.byteOffset + s.length)) as ArrayBuffer };
  };
  const reserve = (bytes: number) => {
    for (let cur = Atomics.load(outstanding, 0); cur > OUTSTANDING_LIMIT_KIB; cur = Atomics.load(outstanding, 0)) Atomics.wait(outstanding, 0, cur, 50);
    Atomics.add(outstanding, 0, Math.ceil(bytes / 1024));
  };
  port.on('message', (m: Request) => {
    try {
      if ('plain' in m) {
        const { codec, sealed } = seal(new Uint8Array(m.plain));
        return post({ id: m.id, codec, sealed }, [sealed]);
      }
      if ('pack' in m) {
        // Restores: a pack's blobs opened, decompressed, checked and written into their files here.
        // Every blob is checked before any is written, so a damaged pack writes nothing.
        const pack = Buffer.from(m.pack);
        const plains = m.slots.map((e) => openBlob(crypter, e, pack, m.name));
        plains.forEach((plain, i) => writeBlob(plain, m.writes[i]!));
        return post({ id: m.id, written: true });
      }
      // Chunks the previous version of the file had are known to the repository: named, not sealed again.
      const known = new Set(m.known);
      const chunks = chunksOf(m.file, data.chunker, data.gear, buf);
      let compressed: boolean | undefined;
      // Each chunk is posted one step late, so the last one carries the end of the file: one
      // message for a small file instead of two.
      let held: { chunk: ChunkReply; transfer: ArrayBuffer[] } | undefined;
      for (let r = chunks.next(); ; r = chunks.next()) {
        if (r.done) {
          post({ id: m.id, chunk: held?.chunk, done: true, bytes: r.value }, held?.transfer);
          break;
        }
        if (held) post({ id: m.id, chunk: held.chunk }, held.transfer);
        const chunk = r.value;
        // Judged by the file's first bytes: later chunks of a gzip file carry no magic of their own.
        compressed ??= looksCompressed(chunk);
        const blob = crypter.blobId(chunk);
        if (known.has(blob)) {
          held = { chunk: { blob, rawLength: chunk.length }, transfer: [] };
          continue;
        }
        const { codec, sealed } = seal(chunk, compressed);
        reserve(sealed.byteLength);
        held = { chunk: { blob, rawLength: chunk.length, codec, sealed }, transfer: [sealed] };
      }
    } catch (e) {
      post({ id: m.id, error: e instanceof Error ? e.message : String(e), code: (e as NodeJS.ErrnoException).code });
    }
  });
}
