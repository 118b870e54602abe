/** bench:disk's results: medians, the comparison table and the figures line. */
import { ROWS } from './plan.ts';
import type { Target } from './targets.ts';

/** samples[row][target key] = IOPS of each round. */
export type Samples = Record<string, Record<string, number[]>>;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

interface RowResult {
  outrig: number;
  bestRaw: { key: string; iops: number };
  bestQcow2: { key: string; iops: number };
  vsRaw: number;
  vsQcow2: number;
}

function best(row: Record<string, number[]>, targets: Target[], kind: Target['kind']): { key: string; iops: number } {
  let b = { key: '', iops: -1 };
  for (const t of targets) if (t.kind === kind && median(row[t.key]!) > b.iops) b = { key: t.key, iops: median(row[t.key]!) };
  return b;
}

export function analyse(samples: Samples, targets: Target[]): Record<string, RowResult> {
  const out: Record<string, RowResult> = {};
  for (const r of ROWS) {
    const row = samples[r.key]!;
    const outrig = median(row.outrig!);
    const bestRaw = best(row, targets, 'raw');
    const bestQcow2 = best(row, targets, 'qcow2');
    out[r.key] = { outrig, bestRaw, bestQcow2, vsRaw: outrig / bestRaw.iops, vsQcow2: outrig / bestQcow2.iops };
  }
  return out;
}

const cell = (xs: number[]) => {
  const m = median(xs).toFixed(0);
  return xs.length > 1 ? `${m} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})` : m;
};

/** Markdown table: median IOPS (min–max over the rounds) per target, ratios against the best raw and qcow2. */
export function table(samples: Samples, targets: Target[], res: Record<string, RowResult>): string {
  const lines = [
    `| mode | workload | ${targets.map((t) => t.label).join(' | ')} | vs best raw | vs best qcow2 |`,
    `|---|---|${targets.map(() => '---|').join('')}---|---|`,
  ];
  for (const r of ROWS) {
    const x = res[r.key]!;
    const cells = targets.map((t) => cell(samples[r.key]![t.key]!));
    lines.push(`| ${r.mode} | ${r.title} | ${cells.join(' | ')} | ${x.vsRaw.toFixed(2)} | ${x.vsQcow2.toFixed(2)} |`);
  }
  return lines.join('\n');
}

/** The last stdout line, and where the lowest "other" ratio is. */
export function figures(res: Record<string, RowResult>): { line: string; minWhere: string } {
  const worse = (a: string, b: string, k: 'vsRaw' | 'vsQcow2') => Math.min(res[a]![k], res[b]![k]);
  let minOther = Infinity;
  let minWhere = '';
  for (const r of ROWS) {
    if (r.key === 'wt_alloc_qd32') continue;
    if (res[r.key]!.vsRaw < minOther) {
      minOther = res[r.key]!.vsRaw;
      minWhere = r.key;
    }
  }
  const f = {
    alloc_qd32_vs_qcow2: res.wt_alloc_qd32!.vsQcow2,
    alloc_qd32_vs_raw: res.wt_alloc_qd32!.vsRaw,
    flush32_vs_raw: worse('f32_alloc_qd32', 'f32_over_qd32', 'vsRaw'),
    flush32_vs_qcow2: worse('f32_alloc_qd32', 'f32_over_qd32', 'vsQcow2'),
    wb_vs_raw: worse('wb_alloc_qd32', 'wb_over_qd32', 'vsRaw'),
    seqread_after_rand_vs_raw: res.seqread_after_rand!.vsRaw,
    min_other_vs_raw: minOther,
  };
  return {
    line: Object.entries(f)
      .map(([k, v]) => `${k}=${v.toFixed(2)}`)
      .join(' '),
    minWhere,
  };
}
