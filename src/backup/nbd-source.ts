/**
 * Reading a volume for a backup without the guest's help and without leaving mounts or devices
 * behind: the volume's disk-engine snapshot is an NBD export (`<volume>@<snapshot>` on diskd's
 * socket); nbdcopy copies it into a sparse temporary image (zero extents are skipped, so a thin
 * volume costs only what it holds), the backup reads that, and the image is deleted. And the way
 * back: a rebuilt image copied into a new volume's export.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

function nbdUri(socket: string, exportName: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socket}`;
}

/** Runs nbdcopy; `signal` kills it, and the promise settles only once it has exited (no reader left on the export). */
function nbdcopy(args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nbdcopy', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const kill = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', kill, { once: true });
    child.on('error', (e) => {
      signal?.removeEventListener('abort', kill);
      reject(e);
    });
    child.on('close', (code, sig) => {
      signal?.removeEventListener('abort', kill);
      if (signal?.aborted) reject(signal.reason);
      else if (code === 0) resolve();
      else reject(Object.assign(new Error(`nbdcopy ended with ${code ?? sig}`), { stderr }));
    });
  });
}

/**
 * Copies an NBD export into a temporary sparse image, runs `fn` on it, and removes it whatever happens.
 * `signal` stops the copy (nbdcopy is killed) and rejects with its reason; `fn` is given it too.
 */
export async function withExportImage<T>(
  socket: string,
  exportName: string,
  fn: (image: string) => Promise<T>,
  dir = tmpdir(),
  signal?: AbortSignal,
): Promise<T> {
  signal?.throwIfAborted();
  const work = mkdtempSync(join(dir, 'outrig-nbd-source-'));
  const image = join(work, 'disk.raw');
  try {
    await nbdcopy(['--target-is-zero', nbdUri(socket, exportName), image], signal).catch((e: Error & { stderr?: string }) => {
      signal?.throwIfAborted();
      throw new Error(`cannot read ${exportName} over NBD: ${e.stderr?.trim() || e.message}`, { cause: e });
    });
    signal?.throwIfAborted();
    return await fn(image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Writes an image into an NBD export of at least the image's size. A new, empty volume is known
 * to read as zeroes, so zero extents are skipped; otherwise they are written as zero requests.
 */
export async function copyImageToExport(image: string, socket: string, exportName: string, o: { targetIsZero?: boolean } = {}): Promise<void> {
  await run('nbdcopy', [...(o.targetIsZero === false ? [] : ['--target-is-zero']), '--flush', image, nbdUri(socket, exportName)]).catch(
    (e: Error & { stderr?: string }) => {
      throw new Error(`cannot write into ${exportName} over NBD: ${e.stderr?.trim() || e.message}`, { cause: e });
    },
  );
}
