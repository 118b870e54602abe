/**
 * Write payload bytes in flight over all of a server's connections: one guest opening many
 * connections (or many guests on one diskd) cannot make the host hold more than the limit in
 * requests waiting for the disk. A connection that finds the budget over its limit stops reading
 * its socket (the client's sends block: backpressure) and is woken when the total falls to half.
 */
export class InFlightBudget {
  used = 0;
  /** The most ever in flight at once (for tests and metrics). */
  peak = 0;
  private readonly waiting = new Set<() => boolean>();

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`in-flight limit must be a positive number of bytes, not ${limit}`);
  }

  take(bytes: number): void {
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
  }

  /** Connections that stopped reading and wait for room. */
  get waitingCount(): number {
    return this.waiting.size;
  }

  get over(): boolean {
    return this.used > this.limit;
  }

  get belowHalf(): boolean {
    return this.used <= this.limit / 2;
  }

  /** `resume` is called as room comes back until it says it resumed (true). */
  wait(resume: () => boolean): void {
    this.waiting.add(resume);
  }

  forget(resume: () => boolean): void {
    this.waiting.delete(resume);
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (!this.belowHalf) return;
    for (const r of [...this.waiting]) {
      // Out first: a connection that resumes may read another request at once and wait again.
      this.waiting.delete(r);
      if (!r()) this.waiting.add(r);
    }
  }
}
