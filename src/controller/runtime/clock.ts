/**
 * Time as the runtime sees it: the current date and timers. Reconcilers and queues take a Clock so
 * that tests drive backoff, deadlines and resyncs with a fake one instead of waiting.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  now(): Date;
  /** Runs fn after ms; the timer never keeps the process alive. */
  after(ms: number, fn: () => void): Timer;
}

export const realClock: Clock = {
  now: () => new Date(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** A clock that moves only when told: `advance` fires the timers that fall due, in order. */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.t = start;
  }

  now(): Date {
    return new Date(this.t);
  }

  after(ms: number, fn: () => void): Timer {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { cancel: () => this.timers.delete(id) };
  }

  /** Timers pending, soonest first (for assertions on what was scheduled). */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = [...this.timers.entries()].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}
