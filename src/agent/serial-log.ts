/**
 * Keeps a VM's serial log bounded. QEMU appends the guest's console to serial.log (a file chardev
 * opened O_APPEND) and has no size limit of its own, so a guest printing without pause would fill
 * the host's disk. The agent rotates it instead: past `maxBytes` the file is copied to serial.log.1
 * and truncated in place; QEMU's next append lands at the new end (offset 0), so the VM keeps
 * running untouched and no QEMU option or agent-held pipe is involved (VMs outlive the agent).
 * Bytes the guest writes between the copy's last read and the truncation (microseconds) are lost.
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, rename, stat, truncate } from 'node:fs/promises';

/** The previous file's name: one generation is kept. */
export function previousLog(path: string): string {
  return `${path}.1`;
}

/** Runs per log, one at a time: a rotation, or one look of a console stream at the files. */
const locks = new Map<string, Promise<unknown>>();

/**
 * Runs `fn` while no rotation of this log runs (and no other holder): a console stream that looks
 * at both files sees them before a rotation or after it, never the current one truncated while the
 * previous one is not yet its copy (it would read the copy again from the start).
 */
export function withLogLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const before = locks.get(path) ?? Promise.resolve();
  const run = before.then(fn, fn);
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  locks.set(path, settled);
  void settled.then(() => {
    if (locks.get(path) === settled) locks.delete(path);
  });
  return run;
}

/** Rotates the log if it has grown past maxBytes; true if it did. */
export function rotateIfOver(path: string, maxBytes: number): Promise<boolean> {
  return withLogLock(path, () => rotate(path, maxBytes));
}

async function rotate(path: string, maxBytes: number): Promise<boolean> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  const tmp = `${previousLog(path)}.tmp`;
  const src = await open(path, 'r');
  const dst = await open(tmp, 'w', 0o600);
  try {
    // Up to the end as it is while copying (the guest may still be writing), then truncate at once.
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    for (;;) {
      const { bytesRead } = await src.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      await dst.write(buf, 0, bytesRead);
      pos += bytesRead;
    }
    await truncate(path, 0);
  } finally {
    await src.close();
    await dst.close();
  }
  await rename(tmp, previousLog(path));
  return true;
}

/**
 * Watches one running VM's serial log (inotify, with a poll as a backstop) and rotates it whenever
 * it passes maxBytes. At most one check runs at a time; changes during a check cause one more.
 */
export class SerialLogLimiter {
  private watcher?: FSWatcher;
  private readonly timer: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;

  constructor(
    private readonly path: string,
    private readonly maxBytes: number,
    private readonly onRotated: () => void,
    private readonly onError: (e: Error) => void,
    pollMs = 1000,
  ) {
    try {
      this.watcher = watch(path, () => this.check());
      this.watcher.on('error', () => undefined);
    } catch {
      // No inotify (or no file yet): the poll alone still bounds the file.
    }
    this.timer = setInterval(() => this.check(), pollMs);
    this.timer.unref();
    this.check();
  }

  check(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void rotateIfOver(this.path, this.maxBytes)
      .then((rotated) => {
        if (rotated && !this.stopped) this.onRotated();
      })
      .catch((e: Error) => this.onError(e))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.check();
        }
      });
  }

  stop(): void {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.timer);
  }
}
