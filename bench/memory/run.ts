/**
 * Memory pooling simulator: the DRAM a fleet needs to host a VM trace under (a) static allocation
 * of each VM's full size from local DRAM and (b) Outrig's pooled tiers plus balloons, at the same
 * service level. See bench/memory/README.md for the model and its sources.
 * Usage: npm run bench:memory -- [--quick] [--seed 1] [--hosts 32] [--days 7] [--group 8] [--pool-pct 10] [--max-batch 16]
 *        [--overcommit 1.5] [--pooled-share 0.25] [--guarantee 0.25] [--sweep]
 * (or MEMSIM_SEED, MEMSIM_HOSTS, MEMSIM_DAYS, … in the environment)
 * Last line: dram_saved_pct=<local DRAM saved by (b)> short_vmtime_pct=<(b)'s short VM-time>
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { compare, neededStatic, type Comparison } from './compare.ts';
import { mulberry32 } from './rng.ts';
import { shortPct, type SimResult } from './simulate.ts';
import { DEFAULT_TRACE, generateTrace, traceStats } from './trace.ts';

const spec = {
  seed: { def: DEFAULT_TRACE.seed, help: 'random seed of the trace' },
  hosts: { def: DEFAULT_TRACE.hosts, help: 'hosts in the fleet' },
  days: { def: DEFAULT_TRACE.days, help: 'simulated days' },
  cores: { def: DEFAULT_TRACE.coresPerHost, help: 'vCPUs per host' },
  load: { def: DEFAULT_TRACE.coreLoad, help: 'mean share of cores rented' },
  'max-batch': { def: DEFAULT_TRACE.maxBatch, help: 'largest deployment kept from the trace, VMs' },
  group: { def: 8, help: 'hosts per pool (sharing one pooled tier)' },
  'pool-pct': { def: 10, help: "pooled tier per group, % of the group's static DRAM" },
  overcommit: { def: 1.5, help: 'maxOvercommit of (b)' },
  'pooled-share': { def: 0.25, help: "tenants' pooledShare in (b)" },
  guarantee: { def: 0.25, help: 'share of each pool guaranteed to tenants in (b)' },
  'max-short': { def: 1, help: 'short VM-time bound of (b), %' },
  gran: { def: 512, help: 'search step, MiB' },
} as const;
type Key = keyof typeof spec;

const { values } = parseArgs({
  options: {
    ...Object.fromEntries(Object.keys(spec).map((k) => [k, { type: 'string' as const }])),
    sweep: { type: 'boolean' },
    help: { type: 'boolean' },
    quick: { type: 'boolean' },
  },
});
if (values.help) {
  for (const [k, v] of Object.entries(spec)) process.stdout.write(`  --${k.padEnd(13)} ${v.help} (default ${v.def})\n`);
  process.stdout.write('  --sweep         also search (b) over pool sizes, pooled shares and overcommit\n');
  process.exit(0);
}
// --quick: a small fleet for a day, a smoke test that the simulator still runs (npm test runs it).
const QUICK: Partial<Record<Key, number>> = { hosts: 8, days: 1 };
const opt = (k: Key): number => {
  const raw = (values as Record<string, unknown>)[k] ?? process.env[`MEMSIM_${k.toUpperCase().replaceAll('-', '_')}`] ?? (values.quick ? QUICK[k] : undefined);
  const n = raw === undefined ? spec[k].def : Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${k}: not a number: ${String(raw)}`);
  return n;
};

const GIB = 1024;
const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const say = (s: string) => process.stdout.write(s + '\n');
const pct = (x: number) => x.toFixed(2);
const gib = (mib: number) => (mib / GIB).toFixed(1);

const params = {
  ...DEFAULT_TRACE,
  seed: opt('seed'),
  hosts: opt('hosts'),
  days: opt('days'),
  coresPerHost: opt('cores'),
  coreLoad: opt('load'),
  maxBatch: opt('max-batch'),
};
const trace = generateTrace(params, mulberry32(params.seed));
const ts = traceStats(trace);
const policy = {
  groupSize: opt('group'),
  maxOvercommit: opt('overcommit'),
  pooledShare: opt('pooled-share'),
  guaranteeFrac: opt('guarantee'),
  placement: 'spread' as const,
};
const common = { granMiB: opt('gran'), maxShortPct: opt('max-short') };

say(
  `trace: seed ${params.seed}, ${params.hosts} hosts x ${params.coresPerHost} vCPUs in pools of ${policy.groupSize}, ${params.days} days in ${params.stepS} s steps, ${trace.tenants.length} tenants`,
);
say(
  `trace: ${ts.vms} VMs (${ts.runningAtStart} running at the start, ${ts.arrivals} arrivals, ${trace.arrivalsPerDay.toFixed(0)}/day), ` +
    `${Math.round(ts.vmHours)} VM-hours, ${pct(100 * ts.longLivedVmHourShare)}% of them in VMs living over a day`,
);
say(
  `trace: cores rented ${pct(100 * ts.meanCoreLoad)}% mean, ${pct(100 * ts.peakCoreLoad)}% peak; memory rented ${ts.meanCommittedGiB.toFixed(0)} GiB mean, ` +
    `${ts.peakCommittedGiB.toFixed(0)} GiB peak; most wanted at once ${ts.peakUsedGiB.toFixed(0)} GiB`,
);
say(
  `trace: median VM wants at most ${pct(100 * ts.medianTouchedFrac)}% of its memory (Pond: ~50%), ${pct(100 * (1 - ts.touchedMemShare))}% of rented memory never wanted, ` +
    `${pct(100 * ts.meanUsedFrac)}% wanted on average`,
);

const staticNeed = neededStatic(trace, { groupSize: policy.groupSize, granMiB: common.granMiB });
const a = staticNeed.result;
say(
  `(a) static: ${gib(staticNeed.localMiB)} GiB local per host (${Object.entries(staticNeed.byPlacement)
    .map(([p, m]) => `${p} ${gib(m)}`)
    .join(', ')}; ${staticNeed.runs} runs, at ${elapsed()}); ` +
    `${a.admitted} admitted, ${a.rejected} rejected, short ${pct(shortPct(a))}%, committed ${pct(100 * a.localCommitMean)}% mean / ${pct(100 * a.localCommitPeak)}% peak of local`,
);

function describe(c: Comparison): string[] {
  const b: SimResult = c.outrigNeed.result;
  const pooledPerGroup = c.outrigNeed.pooledMiB;
  return [
    `(b) outrig: ${c.outrigNeed.found ? '' : 'NOT FOUND (at twice the static DRAM): '}${gib(c.outrigNeed.localMiB)} GiB local per host + ${gib(pooledPerGroup)} GiB pooled per group of ${b.config.groupSize} ` +
      `(maxOvercommit ${b.config.maxOvercommit}, pooledShare ${b.config.pooledShare}, guarantees ${pct(100 * b.config.guaranteeFrac)}% of each pool; ${c.outrigNeed.runs} runs, at ${elapsed()})`,
    `(b) outrig: ${b.admitted} admitted, ${b.rejected} rejected; short ${pct(shortPct(b))}% of VM-time (${pct((100 * b.shortLagSteps) / Math.max(1, b.vmSteps))}% against targets one step late; worst tenant ${pct(b.worstTenantShortPct)}%)`,
    `(b) outrig: balloons hold ${b.meanBalloonedGiB.toFixed(0)} GiB on average; ${b.inflations} inflations, ${b.reclaimLines} reclaim lines, ` +
      `${((b.inUseReclaimedMiBSteps * params.stepS) / 3600 / GIB).toFixed(0)} GiB-hours of memory in use reclaimed`,
    `(b) outrig: committed ${pct(100 * b.localCommitMean)}% mean / ${pct(100 * b.localCommitPeak)}% peak of local, ${pct(100 * b.pooledCommitMean)}% / ${pct(100 * b.pooledCommitPeak)}% of pooled; ` +
      `guests want ${pct(100 * b.usedOverCapacity)}% of local+pooled on average`,
    `DRAM: static ${c.staticLocal.toFixed(0)} GiB; outrig ${c.outrigLocal.toFixed(0)} GiB local + ${c.outrigPooled.toFixed(0)} GiB pooled = ${(c.outrigLocal + c.outrigPooled).toFixed(0)} GiB`,
    `local_dram_saved_pct=${pct(c.localSavedPct)} total_dram_saved_pct=${pct(c.totalSavedPct)} (Pond: 7% of DRAM at 1-5% slowdown)`,
  ];
}

const results: Record<string, unknown>[] = [];
if (values.sweep) {
  say('sweep of (b): pool-pct pooled-share overcommit -> local GiB/host, local saved %, total saved %, short %');
  for (const poolPct of [0, 5, 10, 20]) {
    for (const pooledShare of poolPct ? [0.25, 0.5] : [0]) {
      for (const maxOvercommit of [1.25, 1.5, 2]) {
        const c = compare(trace, { ...common, poolPct, policy: { ...policy, pooledShare, maxOvercommit } }, staticNeed);
        results.push({
          poolPct,
          pooledShare,
          maxOvercommit,
          found: c.outrigNeed.found,
          localGiB: c.outrigNeed.localMiB / GIB,
          localSavedPct: c.localSavedPct,
          totalSavedPct: c.totalSavedPct,
          shortPct: shortPct(c.outrigNeed.result),
        });
        say(
          `sweep: ${String(poolPct).padStart(3)} ${pooledShare.toFixed(2)} ${maxOvercommit.toFixed(2)} -> ${c.outrigNeed.found ? gib(c.outrigNeed.localMiB).padStart(6) : ' none '} ` +
            `${pct(c.localSavedPct).padStart(7)} ${pct(c.totalSavedPct).padStart(7)} ${pct(shortPct(c.outrigNeed.result))} (${elapsed()})`,
        );
      }
    }
  }
}

const c = compare(trace, { ...common, poolPct: opt('pool-pct'), policy }, staticNeed);
for (const line of describe(c)) say(line);

const date = new Date().toISOString();
mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
const { config: _a, ...staticResult } = a;
writeFileSync(
  new URL(`../results/memory-${date.replace(/[:.]/g, '-')}.json`, import.meta.url),
  JSON.stringify(
    {
      date,
      params,
      policy,
      common,
      poolPct: opt('pool-pct'),
      trace: ts,
      staticNeed: { ...staticNeed, result: staticResult },
      outrig: { ...c.outrigNeed },
      localSavedPct: c.localSavedPct,
      totalSavedPct: c.totalSavedPct,
      sweep: results,
      seconds: (performance.now() - t0) / 1000,
    },
    null,
    2,
  ) + '\n',
);
say(`done in ${elapsed()}`);
const b = c.outrigNeed.result;
process.stdout.write(`dram_saved_pct=${c.outrigNeed.found ? pct(c.localSavedPct) : '0.00'} short_vmtime_pct=${pct(shortPct(b))}\n`);
