/** The controller's copy of image files, written only after their checksum matched. */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, type ReadStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export class ChecksumMismatchError extends Error {}

export class ImageFiles {
  constructor(private readonly dir: string) {}

  path(imageId: string, file: string): string {
    if (!/^[a-z0-9-]+$/.test(imageId) || !/^[a-z]+$/.test(file)) throw new Error('invalid image file reference');
    return join(this.dir, imageId, file);
  }

  has(imageId: string, file: string): boolean {
    return existsSync(this.path(imageId, file));
  }

  /** Stores a file from a stream if it has exactly the expected size and sha256; else nothing is kept. */
  async receive(imageId: string, file: string, body: Readable, expected: { sha256: string; size: number }): Promise<void> {
    const dest = this.path(imageId, file);
    await mkdir(join(this.dir, imageId), { recursive: true });
    const tmp = `${dest}.upload-${process.pid}-${Date.now()}`;
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > expected.size) return cb(new ChecksumMismatchError(`${file} is larger than the declared ${expected.size} bytes`));
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tmp, { mode: 0o644 }));
      if (size !== expected.size) throw new ChecksumMismatchError(`${file} has ${size} bytes, the image declares ${expected.size}`);
      const got = hash.digest('hex');
      if (got !== expected.sha256) throw new ChecksumMismatchError(`${file} has sha256 ${got}, the image declares ${expected.sha256}`);
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }

  open(imageId: string, file: string): ReadStream {
    return createReadStream(this.path(imageId, file));
  }

  async remove(imageId: string): Promise<void> {
    await rm(join(this.dir, imageId), { recursive: true, force: true });
  }
}
