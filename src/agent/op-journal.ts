/**
 * Idempotent operations: the answer to every finished operation id is kept on disk, so a repeated
 * id (a controller retry, a resend after a restart) gets the same answer without the work being
 * done twice. An operation interrupted by an agent crash was never answered and simply runs again;
 * each operation is written to be safe to re-run.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';

interface OpOutcome {
  ok: boolean;
  error?: string;
  /** What the operation answers besides success (a backup's snapshot id and figures). */
  result?: Record<string, unknown>;
}

export class OpJournal {
  private done = new Map<string, OpOutcome>();
  private running = new Map<string, Promise<OpOutcome>>();
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly keep = 1000,
    /** Writing the journal failed (a full disk): the answer still goes out, and is kept in memory. */
    private readonly onSaveError: (e: Error) => void = () => undefined,
  ) {}

  async load(): Promise<void> {
    if (!existsSync(this.path)) return;
    try {
      const entries = JSON.parse(await readFile(this.path, 'utf8')) as [string, OpOutcome][];
      this.done = new Map(entries);
    } catch {
      this.done = new Map();
    }
  }

  run(opId: string, work: () => Promise<void | Record<string, unknown>>): Promise<OpOutcome> {
    const known = this.done.get(opId);
    if (known) return Promise.resolve(known);
    const inFlight = this.running.get(opId);
    if (inFlight) return inFlight;
    const p = work()
      .then((result): OpOutcome => (result ? { ok: true, result } : { ok: true }))
      .catch((e: unknown): OpOutcome => ({ ok: false, error: e instanceof Error ? e.message : String(e) }))
      .then(async (outcome) => {
        this.done.set(opId, outcome);
        while (this.done.size > this.keep) this.done.delete(this.done.keys().next().value!);
        await this.save().catch((e: Error) => this.onSaveError(e));
        return outcome;
      })
      .finally(() => this.running.delete(opId));
    this.running.set(opId, p);
    return p;
  }

  private save(): Promise<void> {
    const snapshot = JSON.stringify([...this.done]);
    // After a failed write the next one still runs (a rejected chain would fail every save after it).
    this.saving = this.saving
      .catch(() => undefined)
      .then(async () => {
        await writeFile(this.path + '.tmp', snapshot);
        await rename(this.path + '.tmp', this.path);
      });
    return this.saving;
  }
}
