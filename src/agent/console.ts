/**
 * One console stream the controller asked for: the last `tailBytes` of a VM's serial log (reaching
 * back into the rotated previous file when the current one is shorter), then, when following, what
 * the guest writes next. It reads only what it may send at once: within the controller's credit
 * (what the controller's API client has taken) and while the agent stream's send queue has room, so
 * a slow reader slows the reading instead of making the agent or the controller hold a guest's output.
 */
import { watch, type FSWatcher, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { CONSOLE_CHUNK_MAX } from '../model/agent-protocol.ts';
import { previousLog, withLogLock } from './serial-log.ts';

export interface ConsoleStreamOptions {
  /** The current serial log; the previous one is previousLog(path). */
  path: string;
  tailBytes: number;
  follow: boolean;
  /** Bytes that may be sent before grant() allows more. */
  credit: number;
  send: (chunk: Buffer) => void;
  /** Called once: the stream is over (caught up without follow, or an error). */
  end: (error?: string) => void;
  /** Whether the agent stream's send queue has room; when it has not, reading waits for kick(). */
  canSend: () => boolean;
  pollMs?: number;
}

async function statOf(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

export class ConsoleStream {
  private credit: number;
  private file: 'previous' | 'current' = 'current';
  private offset = 0;
  /** Without follow: bytes still to send. */
  private left = Infinity;
  /** The previous file's inode when last looked at: a new one means the current file was rotated into it. */
  private prevIno?: number;
  private running = false;
  private again = false;
  private done = false;
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  /** Bytes sent so far. */
  sent = 0;

  constructor(private readonly o: ConsoleStreamOptions) {
    this.credit = o.credit;
  }

  async start(): Promise<void> {
    const cur = (await statOf(this.o.path))?.size ?? 0;
    const prev = await statOf(previousLog(this.o.path));
    this.prevIno = prev?.ino;
    if (this.o.tailBytes <= cur || !prev) this.offset = Math.max(0, cur - this.o.tailBytes);
    else {
      this.file = 'previous';
      this.offset = Math.max(0, prev.size - (this.o.tailBytes - cur));
    }
    if (!this.o.follow) this.left = Math.min(this.o.tailBytes, cur + (prev?.size ?? 0));
    else {
      try {
        this.watcher = watch(this.o.path, () => this.kick());
        this.watcher.on('error', () => undefined);
      } catch {
        // No inotify or no file yet: the poll finds new output.
      }
      this.timer = setInterval(() => this.kick(), this.o.pollMs ?? 250);
      this.timer.unref();
    }
    this.kick();
  }

  grant(bytes: number): void {
    this.credit += bytes;
    this.kick();
  }

  /** Reads on if it may (more output, more credit, room in the send queue). One pass at a time. */
  kick(): void {
    if (this.done) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.pump()
      .catch((e: Error) => this.finish(e.message))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  stop(): void {
    this.done = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
  }

  private finish(error?: string): void {
    if (this.done) return;
    this.stop();
    this.o.end(error);
  }

  private async pump(): Promise<void> {
    while (!this.done && this.credit > 0 && this.o.canSend()) {
      if (this.left <= 0) return this.finish();
      const step = await withLogLock(this.o.path, () => this.read());
      if (step === 'stop') return;
    }
  }

  /** One look at the files and at most one read (while no rotation runs); 'stop' when there is nothing to do now. */
  private async read(): Promise<'stop' | 'on'> {
    const prev = await statOf(previousLog(this.o.path));
    if (prev && prev.ino !== this.prevIno) {
      // Rotated: what was current is now the previous file. Reading that, go on there; reading the
      // previous one, it is gone, and the one that replaced it is all unread.
      this.prevIno = prev.ino;
      if (this.file === 'previous') this.offset = 0;
      this.file = 'previous';
    }
    const path = this.file === 'previous' ? previousLog(this.o.path) : this.o.path;
    const size = (this.file === 'previous' ? prev : await statOf(path))?.size ?? 0;
    if (this.file === 'current' && size < this.offset) this.offset = 0; // truncated by hand
    if (this.offset >= size) {
      if (this.file === 'previous') {
        this.file = 'current';
        this.offset = 0;
        return 'on';
      }
      if (!this.o.follow) this.finish();
      return 'stop'; // the guest has written nothing more yet
    }
    const want = Math.min(CONSOLE_CHUNK_MAX, this.credit, size - this.offset, this.left);
    const buf = Buffer.alloc(want);
    const fh = await open(path, 'r');
    let n: number;
    try {
      n = (await fh.read(buf, 0, want, this.offset)).bytesRead;
    } finally {
      await fh.close();
    }
    if (n === 0) return 'on';
    // The queue may have filled while this read waited on the disk: then nothing is sent, and the
    // same bytes are read again when kicked.
    if (!this.o.canSend()) return 'stop';
    this.offset += n;
    this.credit -= n;
    this.left -= n;
    this.sent += n;
    this.o.send(buf.subarray(0, n));
    return 'on';
  }
}
