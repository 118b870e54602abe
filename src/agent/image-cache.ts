/** Content-addressed local copies of image files, fetched from the controller and verified. */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { request } from 'undici';
import { dispatcherFor, type TlsOptions } from '../common/https.ts';
import { pipeline } from 'node:stream/promises';
import type { VmImageRef } from '../model/agent-protocol.ts';

export class ImageCache {
  private fetching = new Map<string, Promise<string>>();

  constructor(
    private readonly dir: string,
    private readonly controllerUrl: () => string,
    /** Mutual TLS with the controller, as for the agent stream. */
    private readonly tls: () => TlsOptions,
  ) {}

  /** Local paths of the image's kernel and initrd, downloading what is missing. */
  async ensure(image: VmImageRef): Promise<{ kernel: string; initrd: string }> {
    const [kernel, initrd] = await Promise.all([this.file(image, 'kernel', image.files.kernel), this.file(image, 'initrd', image.files.initrd)]);
    return { kernel, initrd };
  }

  private file(image: { id: string; name: string }, name: string, want: { sha256: string; size: number }): Promise<string> {
    const dest = join(this.dir, want.sha256);
    const existing = this.fetching.get(want.sha256);
    if (existing) return existing;
    const p = (async () => {
      // Files are verified on arrival and named by their hash; size guards against outside damage.
      if (existsSync(dest) && (await stat(dest)).size === want.size) return dest;
      await mkdir(this.dir, { recursive: true });
      await this.download(image, name, want, dest);
      return dest;
    })().finally(() => this.fetching.delete(want.sha256));
    this.fetching.set(want.sha256, p);
    return p;
  }

  /** Downloads one file of an image to `dest`, verifying its sha256; nothing is left at dest on failure. */
  async download(image: { id: string; name: string }, name: string, want: { sha256: string; size: number }, dest: string): Promise<void> {
    const res = await request(`${this.controllerUrl()}/v1/images/${image.id}/files/${name}`, { dispatcher: dispatcherFor(this.tls()) });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`downloading ${name} of image ${image.name}: HTTP ${res.statusCode}`);
    }
    const tmp = `${dest}.part-${process.pid}`;
    const hash = createHash('sha256');
    const meter = new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(res.body, meter, createWriteStream(tmp));
      const got = hash.digest('hex');
      if (got !== want.sha256) throw new Error(`${name} of image ${image.name} has sha256 ${got}, expected ${want.sha256}`);
      await rename(tmp, dest);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  }
}
