/**
 * Write-back backlog: bytes acknowledged to clients but not yet durable, over all the disks of one
 * process. Past the limit, the disk whose round finds it over makes its own backlog durable before
 * acknowledging that round, so clients wait (and, through the NBD in-flight budget, stop being
 * read): the backlog a FLUSH or a power cut has to deal with stays bounded, however many disks
 * and guests write at once.
 */
const DEFAULT_MAX_BACKLOG = 1024 * 1024 * 1024;

export class BacklogBudget {
  used = 0;
  /** The most ever waiting at once (for tests and metrics). */
  peak = 0;

  constructor(readonly limit: number = DEFAULT_MAX_BACKLOG) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`backlog limit must be a positive number of bytes, not ${limit}`);
  }

  take(bytes: number): void {
    this.used += bytes;
    if (this.used > this.peak) this.peak = this.used;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }

  get over(): boolean {
    return this.used > this.limit;
  }
}
