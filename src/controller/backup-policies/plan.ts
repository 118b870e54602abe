/**
 * Backup policies, pure: when a policy runs next, which instances a run backs up (and which it
 * skips, with the reason), and which of its backups the retention rules let go.
 */
import { Cron } from 'croner';
import { selectKeep } from '../../backup/index.ts';
import { backupSettled, type Backup, type BackupPolicy, type Retention } from '../../model/backup.ts';
import type { Instance } from '../../model/instance.ts';

/** The next time the cron expression fires after `after` (UTC); throws on an invalid expression. */
export function nextRun(schedule: string, after: Date): Date {
  const next = new Cron(schedule, { timezone: 'UTC', paused: true }).nextRun(after);
  if (!next) throw new Error(`schedule '${schedule}' never fires`);
  return next;
}

/** A sentence when the schedule is unusable; undefined when it is fine. */
export function scheduleProblem(schedule: string): string | undefined {
  if (schedule.trim().split(/\s+/).length !== 5) return `schedule '${schedule}' must have five fields: minute hour day-of-month month day-of-week (UTC)`;
  try {
    nextRun(schedule, new Date());
    return undefined;
  } catch (e) {
    return `schedule '${schedule}' is not a cron expression: ${(e as Error).message}`;
  }
}

export function retentionProblem(r: Retention): string | undefined {
  return Object.values(r).some((n) => n !== undefined && n > 0)
    ? undefined
    : 'retention needs at least one rule above 0 (last, daily, weekly, monthly): otherwise every backup would go';
}

export function selects(p: BackupPolicy, i: Instance): boolean {
  return Object.entries(p.spec.instanceLabels).every(([k, v]) => i.labels[k] === v);
}

interface RunPlan {
  /** Volumes to back up now, with the instance they serve. */
  backups: { instance: Instance; volumeId: string }[];
  skipped: { instance: string; reason: string }[];
}

/** What a run of the policy does: each selected instance's boot volume, unless the previous backup of it still runs. */
export function planRun(p: BackupPolicy, instances: Instance[], backups: Backup[]): RunPlan {
  const plan: RunPlan = { backups: [], skipped: [] };
  const busy = new Set(
    backups.filter((b) => b.spec.policy === p.id && (b.status.phase === 'pending' || b.status.phase === 'running')).map((b) => b.spec.volume),
  );
  for (const i of instances.filter((x) => selects(p, x)).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!i.spec.bootVolume) plan.skipped.push({ instance: i.name, reason: 'boots a kernel image: no boot volume to back up' });
    else if (busy.has(i.spec.bootVolume)) plan.skipped.push({ instance: i.name, reason: 'the previous backup of its volume is still running' });
    else plan.backups.push({ instance: i, volumeId: i.spec.bootVolume });
  }
  return plan;
}

/**
 * The policy's backups to delete: per volume, completed backups outside the retention rules, and
 * every failed or cancelled one but the newest run's (it says why the last run failed; a later run,
 * success or failure, makes it history), so runs that keep failing do not pile up.
 */
export function expired(p: BackupPolicy, backups: Backup[]): Backup[] {
  const mine = backups.filter((b) => b.spec.policy === p.id && b.status.phase !== 'deleting');
  const byVolume = new Map<string, Backup[]>();
  for (const b of mine) byVolume.set(b.spec.volume ?? '', [...(byVolume.get(b.spec.volume ?? '') ?? []), b]);
  const out: Backup[] = [];
  for (const list of byVolume.values()) {
    const done = list.filter((b) => b.status.phase === 'completed');
    const keep = selectKeep(
      done.map((b) => ({ id: b.id, time: b.createdAt })),
      p.spec.retention,
    );
    out.push(...done.filter((b) => !keep.has(b.id)));
    const settled = list.filter((b) => backupSettled(b.status.phase)).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    const newest = settled.at(-1);
    out.push(...settled.filter((b) => b.status.phase !== 'completed' && b !== newest));
  }
  return out;
}
