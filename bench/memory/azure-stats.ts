/**
 * Recomputes the tables of azure.ts from the processed Azure Public Dataset V1 trace of the public
 * repository huaweicloud/trace_generation_rnn (not shipped here): one directory holding its
 * resources/traces/v1.{train,dev,test}.txt and v1.test.c2591400.txt and its
 * resources/maps/flav_map.txt and v1.interval_map.txt.
 * Usage: npx tsx bench/memory/azure-stats.ts DIR
 * Prints flavour counts, arrivals per hour of day, deployment sizes, and Kaplan-Meier lifetime CDFs
 * per flavour at LIFETIME_EDGES_S.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LIFETIME_EDGES_S } from './azure.ts';

type Row = { t: number; batches: string[][] };

function parse(path: string): Row[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const sp = line.indexOf(' ');
      const batches = line
        .slice(sp + 1)
        .split('|')
        .map((b) => b.split(',').filter((x) => x))
        .filter((b) => b.length);
      return { t: Number(line.slice(0, sp)), batches };
    });
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: azure-stats.ts DIR');
const file = (name: string) => join(dir, name);

const flavors = new Map<string, string>();
for (const l of readFileSync(file('flav_map.txt'), 'utf8')
  .split('\n')
  .filter((x) => x.trim())) {
  const [shape, key] = l.split(' ');
  flavors.set(key!, shape!);
}
const binStart = new Map<number, number>();
for (const l of readFileSync(file('v1.interval_map.txt'), 'utf8')
  .split('\n')
  .filter((x) => x.trim())) {
  const [s, b] = l.split(' ').map(Number);
  if (!binStart.has(b!)) binStart.set(b!, s!);
}

const count = new Map<string, number>();
const hours = new Array<number>(24).fill(0);
const batchSizes = new Map<number, number>();
for (const split of ['train', 'dev', 'test']) {
  for (const row of parse(file(`v1.${split}.txt`))) {
    for (const b of row.batches) {
      for (const f of b) count.set(f, (count.get(f) ?? 0) + 1);
      hours[Math.floor((row.t % 86_400) / 3600)]! += b.length;
      batchSizes.set(b.length, (batchSizes.get(b.length) ?? 0) + 1);
    }
  }
}
const total = [...count.values()].reduce((a, b) => a + b, 0);
console.log(`VMs ${total}`);
for (const [f, n] of [...count].sort((a, b) => b[1] - a[1])) console.log(`flavour ${f} (${flavors.get(f)}): ${n} ${((100 * n) / total).toFixed(2)}%`);
console.log(`arrivals by hour: ${hours.join(', ')}`);
const batches = [...batchSizes.values()].reduce((a, b) => a + b, 0);
for (const [lo, hi] of [
  [1, 1],
  [2, 2],
  [3, 3],
  [4, 4],
  [5, 5],
  [6, 7],
  [8, 10],
  [11, 20],
  [21, 50],
  [51, 100],
  [101, Infinity],
] as const) {
  const n = [...batchSizes].filter(([k]) => k >= lo && k <= hi).reduce((a, [, v]) => a + v, 0);
  console.log(`deployments of ${lo}-${hi} VMs: ${((100 * n) / batches).toFixed(2)}%`);
}

// Lifetimes: the test split's durations, bin indices with U (ended) or C (still running at the end).
const durations = parse(file('v1.test.c2591400.txt'));
const kinds = parse(file('v1.test.txt'));
const byGroup = new Map<string, { bin: number; censored: boolean }[]>();
durations.forEach((row, i) => {
  row.batches.forEach((b, j) => {
    b.forEach((d, k) => {
      const f = kinds[i]!.batches[j]![k]!;
      const group = 'bgkmoa'.includes(f) ? f : 'rest';
      const item = { bin: Number(d.slice(1)), censored: d[0] === 'C' };
      for (const g of [group, 'all']) {
        if (!byGroup.has(g)) byGroup.set(g, []);
        byGroup.get(g)!.push(item);
      }
    });
  });
});
const maxBin = Math.max(...binStart.keys());
for (const [g, items] of byGroup) {
  const died = new Map<number, number>();
  const left = new Map<number, number>();
  for (const x of items) (x.censored ? left : died).set(x.bin, ((x.censored ? left : died).get(x.bin) ?? 0) + 1);
  let atRisk = items.length;
  let survival = 1;
  const cdfAtEnd = new Map<number, number>();
  for (let b = 0; b <= maxBin; b++) {
    if (atRisk > 0) survival *= 1 - (died.get(b) ?? 0) / atRisk;
    atRisk -= (died.get(b) ?? 0) + (left.get(b) ?? 0);
    cdfAtEnd.set(binStart.get(b + 1) ?? Infinity, 1 - survival);
  }
  console.log(`lifetime CDF ${g} (${items.length} VMs): ${LIFETIME_EDGES_S.map((e) => (cdfAtEnd.get(e) ?? NaN).toFixed(4)).join(', ')}`);
}
