/** Operations that can be cancelled (backups) while they run, by the operation id `op.cancel` names. */
export class Cancellations {
  private readonly running = new Map<string, AbortController>();

  /** Runs the work with a signal that `cancel(opId)` aborts. */
  async run<T>(opId: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ac = new AbortController();
    this.running.set(opId, ac);
    try {
      return await work(ac.signal);
    } finally {
      this.running.delete(opId);
    }
  }

  isRunning(opId: string): boolean {
    return this.running.has(opId);
  }

  /** Aborts the operation if it is running; whether it was. */
  cancel(opId: string, reason: Error): boolean {
    const ac = this.running.get(opId);
    ac?.abort(reason);
    return !!ac;
  }
}
