/** `outrig backup policy ...`: scheduled backups of instances chosen by label, with retention. */
import { Option, type Command } from 'commander';
import type { BackupPolicy, Retention } from '../../model/backup.ts';
import { contextOf } from '../context.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';
import { collect, parseIntStrict, parseLabels } from '../parse.ts';

const ppath = (ref: string) => `/v1/backup-policies/${encodeURIComponent(ref)}`;

interface RuleFlags {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
}

function retentionOptions(c: Command): Command {
  return c
    .addOption(new Option('--keep-last <n>', 'keep the newest n backups of each volume').argParser(parseIntStrict('--keep-last')))
    .addOption(new Option('--keep-daily <n>', 'keep the newest backup of each of the last n days').argParser(parseIntStrict('--keep-daily')))
    .addOption(new Option('--keep-weekly <n>', 'the same per ISO week').argParser(parseIntStrict('--keep-weekly')))
    .addOption(new Option('--keep-monthly <n>', 'the same per month').argParser(parseIntStrict('--keep-monthly')));
}

function retentionOf(o: RuleFlags): Retention | undefined {
  const r: Retention = { last: o.keepLast, daily: o.keepDaily, weekly: o.keepWeekly, monthly: o.keepMonthly };
  for (const k of Object.keys(r) as (keyof Retention)[]) if (r[k] === undefined) delete r[k];
  return Object.keys(r).length ? r : undefined;
}

function rules(r: Retention): string {
  return Object.entries(r)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

function selector(l: Record<string, string>): string {
  return (
    Object.entries(l)
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '(every instance)'
  );
}

/**
 * What a run did: the backups it started and the instances it skipped, or, when it touched none,
 * that no instance has the policy's labels (a run considers every instance that has them).
 */
export function runSummary(p: Pick<BackupPolicy, 'name' | 'spec' | 'status'>): string {
  const r = p.status.lastRun;
  if (r && !r.started.length && !r.skipped.length) {
    const labels = Object.entries(p.spec.instanceLabels);
    if (!labels.length) return `backup policy ${p.name} ran: there are no instances, so it started nothing`;
    return (
      `backup policy ${p.name} ran and started nothing: no instance has the label${labels.length > 1 ? 's' : ''} ${selector(p.spec.instanceLabels)}` +
      ` (give it to instances with instance create --label ${labels.map(([k, v]) => `${k}=${v}`).join(' --label ')}, or select others with backup policy set ${p.name} --instance-label KEY=VALUE)`
    );
  }
  return `backup policy ${p.name} ran: started ${r?.started.join(', ') || 'nothing'}${r?.skipped.length ? `; skipped ${r.skipped.map((x) => `${x.instance} (${x.reason})`).join(', ')}` : ''}`;
}

export function backupPolicyCommands(backup: Command): void {
  const policy = backup.command('policy').description('scheduled backups of instances chosen by label, with retention rules');

  retentionOptions(
    policy
      .command('create <name>')
      .description('back up the boot volumes of instances with these labels on a cron schedule (UTC)')
      .requiredOption('--schedule <cron>', "when to run, e.g. '0 2 * * *' (02:00 UTC daily)")
      .option('--instance-label <key=value>', 'instances with this label (repeatable: all must match; none: every instance)', collect, [])
      .option('--repository <dir>', "repository directory as the hosts see it (default: the cluster's)")
      .option('--paused', 'create it paused'),
  ).action(async (name: string, o: { schedule: string; instanceLabel: string[]; repository?: string; paused?: boolean } & RuleFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const p = await ctx.api.post<BackupPolicy>('/v1/backup-policies', {
      name,
      schedule: o.schedule,
      instanceLabels: parseLabels(o.instanceLabel),
      retention: retentionOf(o) ?? {},
      repository: o.repository,
      paused: o.paused,
    });
    if (ctx.json) return printJson(p);
    process.stdout.write(
      `backup policy ${p.name} created: ${selector(p.spec.instanceLabels)} at '${p.spec.schedule}' UTC, keep ${rules(p.spec.retention)}; next run ${p.status.nextRunAt ?? '(paused)'}\n`,
    );
  });

  policy
    .command('list')
    .description('list backup policies')
    .action(async (_o, cmd: Command) => {
      const ctx = contextOf(cmd);
      const items = (await ctx.api.get<{ items: BackupPolicy[] }>('/v1/backup-policies')).items;
      if (ctx.json) return printJson(items);
      printTable(
        ['NAME', 'PHASE', 'SCHEDULE', 'INSTANCES', 'KEEP', 'NEXT RUN', 'LAST RUN', 'AGE'],
        items.map((p) => [
          p.name,
          p.status.phase,
          p.spec.schedule,
          selector(p.spec.instanceLabels),
          rules(p.spec.retention),
          p.status.nextRunAt ?? '-',
          p.status.lastRun?.at ?? '-',
          age(p.createdAt),
        ]),
      );
    });

  policy
    .command('show <policy>')
    .description('show a backup policy and its last run')
    .action(async (ref: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd);
      const p = await ctx.api.get<BackupPolicy>(ppath(ref));
      if (ctx.json) return printJson(p);
      printDetails({
        name: p.name,
        id: p.id,
        phase: p.status.phase,
        schedule: `${p.spec.schedule} (UTC)`,
        instances: selector(p.spec.instanceLabels),
        keep: rules(p.spec.retention),
        repository: p.spec.repository,
        nextRun: p.status.nextRunAt,
        lastRun: p.status.lastRun
          ? { at: p.status.lastRun.at, started: p.status.lastRun.started, skipped: p.status.lastRun.skipped.map((x) => `${x.instance}: ${x.reason}`) }
          : undefined,
        expiredSoFar: p.status.expired,
        createdAt: p.createdAt,
      });
    });

  retentionOptions(
    policy
      .command('set <policy>')
      .description('change a policy: schedule, instances, retention, or pause/resume')
      .option('--schedule <cron>', 'new schedule (UTC)')
      .option('--instance-label <key=value>', 'replace the instance selection (repeatable)', collect, [])
      .option('--pause', 'stop running it on schedule')
      .option('--resume', 'run it on schedule again'),
  ).action(async (ref: string, o: { schedule?: string; instanceLabel: string[]; pause?: boolean; resume?: boolean } & RuleFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const p = await ctx.api.patch<BackupPolicy>(ppath(ref), {
      schedule: o.schedule,
      instanceLabels: parseLabels(o.instanceLabel),
      retention: retentionOf(o),
      paused: o.pause ? true : o.resume ? false : undefined,
    });
    if (ctx.json) return printJson(p);
    process.stdout.write(`backup policy ${p.name}: ${p.status.phase}, next run ${p.status.nextRunAt ?? '-'}\n`);
  });

  policy
    .command('run <policy>')
    .description('run a policy now')
    .action(async (ref: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd);
      const p = await ctx.api.post<BackupPolicy>(`${ppath(ref)}/run`);
      if (ctx.json) return printJson(p);
      process.stdout.write(`${runSummary(p)}\n`);
    });

  policy
    .command('delete <policy>')
    .description('delete a policy (the backups it made stay)')
    .action(async (ref: string, _o, cmd: Command) => {
      const ctx = contextOf(cmd);
      const p = await ctx.api.delete<BackupPolicy>(ppath(ref));
      if (ctx.json) return printJson(p);
      process.stdout.write(`backup policy ${p.name} deleted\n`);
    });
}
