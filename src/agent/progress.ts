/**
 * Progress of a long operation, sent to the controller at most once an interval. What is held back
 * is not lost: a new stage goes out at once, the latest figures go out when the interval ends, and
 * `flush` sends them at the end of a stage. (Dropping what came within the interval left a backup
 * that finished its files within a second of its first report at "0 files, 0 B" to the end.)
 */
import type { BackupProgress } from '../model/backup.ts';

export type ProgressSink = (p: BackupProgress) => void;

export interface ThrottleClock {
  now: () => number;
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (t: unknown) => void;
}

/** Its timers do not keep the process alive. */
const REAL: ThrottleClock = { now: Date.now, setTimeout: (fn, ms) => setTimeout(fn, ms).unref(), clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout) };

export class ProgressThrottle {
  private last = -Infinity;
  private stage?: string;
  private pending?: BackupProgress;
  private timer?: unknown;

  constructor(
    private readonly sink: ProgressSink,
    private readonly intervalMs = 1000,
    private readonly clock: ThrottleClock = REAL,
  ) {}

  /** Progress as it is now; copied, as callers pass objects they keep changing. */
  readonly push = (p: BackupProgress): void => {
    this.pending = { ...p };
    const wait = this.last + this.intervalMs - this.clock.now();
    if (p.stage !== this.stage || wait <= 0) return this.flush();
    if (this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  };

  /** Sends what is held back now (end of a stage). */
  flush(): void {
    this.stop();
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    this.last = this.clock.now();
    this.stage = p.stage;
    this.sink(p);
  }

  /** Drops the timer (the operation is over); nothing more is sent. */
  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
