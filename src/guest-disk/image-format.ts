/**
 * What an image handed to `image import` is, read from its header here rather than guessed by
 * qemu-img: raw, or qcow2 without a backing file, an external data file or encryption (a qcow2
 * header can name any host file as its backing or data file, and an import would read it).
 * Pure but for reading the header.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface ImageFormat {
  format: 'raw' | 'qcow2';
  virtualSizeBytes: number;
}

const QCOW2_MAGIC = 0x514649fb;
const INCOMPAT_DATA_FILE = 1n << 2n;

export function qcow2Header(h: Buffer): ImageFormat {
  if (h.length < 72) throw new Error('the qcow2 header is truncated');
  const version = h.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new Error(`qcow2 version ${version} is not supported`);
  if (h.readBigUInt64BE(8) !== 0n || h.readUInt32BE(16) !== 0)
    throw new Error('the image names a backing file: import takes self-contained images only (qemu-img convert it to one first)');
  if (h.readUInt32BE(32) !== 0) throw new Error('the image is encrypted: import takes unencrypted images');
  if (version === 3 && h.length >= 80 && (h.readBigUInt64BE(72) & INCOMPAT_DATA_FILE) !== 0n)
    throw new Error('the image keeps its data in an external file: import takes self-contained images only');
  const size = Number(h.readBigUInt64BE(24));
  if (!Number.isSafeInteger(size) || size <= 0 || size > 2 ** 46) throw new Error(`the image claims a size of ${size} bytes`);
  return { format: 'qcow2', virtualSizeBytes: size };
}

/**
 * The image's format and size; `declared` (--format) must agree with what its header says: a
 * qcow2 file declared raw would be imported as its container bytes, a disk of nonsense. Only
 * `rawDespiteHeader` takes such a file byte for byte (a raw disk whose guest wrote a qcow2
 * header at its start).
 */
export function inspectImage(path: string, declared?: string, o: { rawDespiteHeader?: boolean } = {}): ImageFormat {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const h = Buffer.alloc(104);
    const n = readSync(fd, h, 0, h.length, 0);
    const isQcow2 = n >= 4 && h.readUInt32BE(0) === QCOW2_MAGIC;
    if (declared !== undefined && declared !== 'raw' && declared !== 'qcow2') throw new Error(`format ${declared} is not supported (raw or qcow2)`);
    if (declared === 'raw' && isQcow2 && !o.rawDespiteHeader) {
      throw new Error(
        "it is a qcow2 image (it starts with the qcow2 magic 'QFI\\xfb'), not raw: import it with --format qcow2 or without --format (or, for a raw disk whose guest wrote a qcow2 header at its start, --format raw --raw-despite-header)",
      );
    }
    if (declared === 'raw' || (!declared && !isQcow2)) {
      if (size === 0) throw new Error('the image is empty');
      return { format: 'raw', virtualSizeBytes: size };
    }
    if (!isQcow2) throw new Error('the image is not qcow2 (no qcow2 header): import it with --format raw');
    return qcow2Header(h.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}
