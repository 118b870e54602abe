/**
 * bench:backup — Outrig's backup repository beside restic (Debian's package) on the same data, in
 * one run: a copy of /usr/share and /usr/bin (about 1.1 GB, 49,000 files). For each tool: initial
 * backup, an incremental backup after changing 1% of the files, a full restore, a one-file restore,
 * and the repository size. Both read from the page cache (the data is read once before timing),
 * both encrypt and compress (restic's repository v2 default, zstd). Ends with one line of ratios
 * (Outrig ÷ restic, lower is better).
 *
 * Each step runs for both tools back to back, in `--rounds` rounds (default 3) with the order
 * alternating; the table has the medians.
 *
 * Usage: npm run bench:backup [-- --data DIR] [--rounds N] [--keep] [--quick]
 * (--quick: /usr/share/doc only, one round: a smoke test that the benchmark still works, which npm test runs)
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const arg = (k: string) => {
  const i = args.indexOf(`--${k}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes('--quick');
const work = mkdtempSync(join(tmpdir(), 'outrig-bench-backup-'));
const PASS = 'bench passphrase';
const OUTRIG = join(import.meta.dirname, '..', 'bin', 'outrig.js');

function sh(cmd: string, argv: string[], env: Record<string, string> = {}): { seconds: number; stdout: string } {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

function du(dir: string): number {
  return Number(sh('du', ['-sb', dir]).stdout.split('\t')[0]);
}

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

interface Tool {
  name: string;
  init(repo: string): void;
  backup(repo: string, data: string): number;
  restore(repo: string, target: string, include?: string): number;
}

const restic: Tool = {
  name: 'restic',
  init: (repo) => void sh('restic', ['-r', repo, 'init', '-q'], { RESTIC_PASSWORD: PASS }),
  backup: (repo, data) => sh('restic', ['-r', repo, 'backup', '-q', data], { RESTIC_PASSWORD: PASS }).seconds,
  restore: (repo, target, include) =>
    sh('restic', ['-r', repo, 'restore', 'latest', '-q', '--target', target, ...(include ? ['--include', include] : [])], { RESTIC_PASSWORD: PASS }).seconds,
};

const outrig: Tool = {
  name: 'outrig',
  init: (repo) => void sh(process.execPath, [OUTRIG, 'backup', '--repo', repo, 'init'], { OUTRIG_BACKUP_PASSPHRASE: PASS }),
  backup: (repo, data) => sh(process.execPath, [OUTRIG, 'backup', '--repo', repo, 'create', data], { OUTRIG_BACKUP_PASSPHRASE: PASS }).seconds,
  restore: (repo, target, include) =>
    sh(process.execPath, [OUTRIG, 'backup', '--repo', repo, 'restore', 'latest', '--target', target, ...(include ? ['--include', include] : [])], {
      OUTRIG_BACKUP_PASSPHRASE: PASS,
    }).seconds,
};

try {
  const data = arg('data') ?? join(work, 'data');
  if (!arg('data')) {
    const sources = quick ? ['/usr/share/doc'] : ['/usr/share', '/usr/bin'];
    process.stderr.write(`copying ${sources.join(' and ')} to ${data} ...\n`);
    sh('mkdir', ['-p', data]);
    sh('cp', ['-a', ...sources, data]);
  }
  const all = files(data);
  const bytes = all.reduce((n, f) => n + statSync(f).size, 0);
  process.stderr.write(`data: ${all.length} files, ${(bytes / 1e9).toFixed(2)} GB\n`);
  sh('tar', ['-cf', '/dev/null', data]); // warm the page cache for both
  const oneFile = all[Math.floor(all.length / 2)]!;
  // Rounds, each step run by both tools back to back, the order alternating between rounds, and
  // medians: this disk's speed drifts within minutes, and a tool that always went second would
  // always meet the slower disk.
  const rounds = Number(arg('rounds') ?? (quick ? 1 : 3));
  const samples: Record<string, Record<string, number[]>> = { restic: {}, outrig: {} };
  const note = (tool: string, k: string, v: number) => ((samples[tool]![k] ??= []).push(v), v);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [restic, outrig] : [outrig, restic];
    const repo = (t: Tool) => join(work, `repo-${t.name}-${round}`);
    for (const t of order) t.init(repo(t));
    sh('sync', []);
    for (const t of order) note(t.name, 'initial', t.backup(repo(t), data));
    // 1% of the files, spread evenly, get a line appended between the two backups.
    for (const f of all.filter((_, i) => i % 100 === 7 + round)) appendFileSync(f, `changed in round ${round}\n`);
    sh('sync', []);
    for (const t of order) note(t.name, 'incremental', t.backup(repo(t), data));
    sh('sync', []);
    // Restored trees stay until the end: deleting a GB of files here would slow the steps after it
    // (this disk is mounted with discard).
    for (const t of order) note(t.name, 'restore', t.restore(repo(t), join(work, `restore-${t.name}-${round}`)));
    for (const t of order) note(t.name, 'one', t.restore(repo(t), join(work, `one-${t.name}-${round}`), oneFile));
    for (const t of order) note(t.name, 'size', du(repo(t)));
    process.stderr.write(`round ${round + 1}/${rounds}: ${JSON.stringify(samples)}\n`);
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const rows: Record<string, Record<string, number>> = {};
  for (const [tool, m] of Object.entries(samples)) rows[tool] = Object.fromEntries(Object.entries(m).map(([k, xs]) => [k, median(xs)]));
  const r = rows.restic!;
  const o = rows.outrig!;
  const fmt = (x: number) => x.toFixed(2);
  process.stdout.write(`\n| median of ${rounds} rounds | restic 0.14 | Outrig | Outrig ÷ restic |\n|---|---|---|---|\n`);
  for (const [k, label] of [
    ['initial', 'initial backup (s)'],
    ['incremental', 'incremental, 1% of files changed (s)'],
    ['restore', 'full restore (s)'],
    ['one', 'one-file restore (s)'],
  ] as const) {
    process.stdout.write(`| ${label} | ${fmt(r[k]!)} | ${fmt(o[k]!)} | ${fmt(o[k]! / r[k]!)} |\n`);
  }
  process.stdout.write(`| repository (MB) | ${(r.size! / 1e6).toFixed(0)} | ${(o.size! / 1e6).toFixed(0)} | ${fmt(o.size! / r.size!)} |\n\n`);
  process.stdout.write(
    `initial_vs_restic=${fmt(o.initial! / r.initial!)} incremental_vs_restic=${fmt(o.incremental! / r.incremental!)} restore_vs_restic=${fmt(o.restore! / r.restore!)} size_vs_restic=${fmt(o.size! / r.size!)}\n`,
  );
} finally {
  if (!args.includes('--keep')) rmSync(work, { recursive: true, force: true });
}
