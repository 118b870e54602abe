import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FLAVORS, LIFETIME_CDF } from '../../../bench/memory/azure.ts';
import { compare, neededStatic, searchLeast } from '../../../bench/memory/compare.ts';
import { mulberry32 } from '../../../bench/memory/rng.ts';
import { outrigConfig, shortPct, simulate, staticConfig, type OutrigPolicy } from '../../../bench/memory/simulate.ts';
import { DEFAULT_TRACE, generateTrace, meanLifetimeS, stepRange, traceStats, wantedMiB, type TraceParams } from '../../../bench/memory/trace.ts';

const small: TraceParams = { ...DEFAULT_TRACE, hosts: 8, days: 1, maxBatch: 4 };
const trace = (p: Partial<TraceParams> = {}) => {
  const params = { ...small, ...p };
  return generateTrace(params, mulberry32(params.seed));
};
const policy: OutrigPolicy = { groupSize: 4, maxOvercommit: 1.5, pooledShare: 0.25, guaranteeFrac: 0.25, placement: 'spread' };
const GIB = 1024;

test('the generator is deterministic by seed', () => {
  const a = trace({ seed: 7 });
  const b = trace({ seed: 7 });
  const c = trace({ seed: 8 });
  assert.deepEqual(a.vms, b.vms);
  assert.notDeepEqual(
    a.vms.map((v) => [v.start, v.sizeMiB]),
    c.vms.map((v) => [v.start, v.sizeMiB]),
  );
  assert.ok(
    a.vms.every((v, i) => i === 0 || a.vms[i - 1]!.start <= v.start),
    'sorted by arrival',
  );
});

test('generated traces keep the documented statistics (Azure trace mix and lifetimes, Pond touched memory)', () => {
  let touched = 0;
  let untouched = 0;
  let long = 0;
  let load = 0;
  const seeds = [1, 2, 3];
  for (const seed of seeds) {
    const t = generateTrace({ ...DEFAULT_TRACE, seed, days: 2 }, mulberry32(seed));
    const s = traceStats(t);
    touched += s.medianTouchedFrac / seeds.length;
    untouched += (1 - s.touchedMemShare) / seeds.length;
    long += s.longLivedVmHourShare / seeds.length;
    load += s.meanCoreLoad / seeds.length;
    const arrivals = t.vms.filter((v) => v.start > 0);
    const small = arrivals.filter((v) => v.flavor === 'b').length / arrivals.length;
    assert.ok(small > 0.3 && small < 0.65, `1-vCPU 1.75 GiB VMs are ${small} of arrivals (trace: 0.48, deployments drawn whole)`);
    const lives = arrivals.map((v) => v.end - v.start).sort((x, y) => x - y);
    const median = lives[Math.floor(lives.length / 2)]!;
    assert.ok(median > 600 && median < 7200, `median lifetime ${median} s (trace: about 25 min)`);
    for (const v of t.vms.slice(0, 200)) {
      for (const at of [Math.max(0, v.start), Math.max(0, v.start) + 3600, v.end - 1]) {
        const w = wantedMiB(v, at);
        assert.ok(w >= 1 && w <= Math.ceil(v.sizeMiB * v.peakFrac), `${v.id} wants ${w} MiB of ${v.sizeMiB}, peak ${v.peakFrac}`);
      }
    }
  }
  assert.ok(touched > 0.42 && touched < 0.58, `median VM touches ${touched} of its memory (Pond: about half)`);
  assert.ok(untouched > 0.35 && untouched < 0.6, `${untouched} of rented memory is never wanted (Pond: about half)`);
  assert.ok(long > 0.7, `${long} of VM-hours in VMs living over a day (Resource Central: long-lived VMs hold most of the resources)`);
  assert.ok(load > 0.4 && load < 0.8, `mean core load ${load}, target ${DEFAULT_TRACE.coreLoad}`);
});

test('lifetime tables are CDFs and their means are finite and ordered as the trace says', () => {
  for (const cdf of Object.values(LIFETIME_CDF)) assert.ok(cdf.every((p, i) => p > 0 && p < 1 && (i === 0 || p >= cdf[i - 1]!)));
  assert.ok(FLAVORS.every((f) => f.lifetime in LIFETIME_CDF));
  // The 8-vCPU 14 GiB VMs are mostly short jobs; the 2-vCPU ones live longer on average.
  const max = 90 * 86_400;
  assert.ok(meanLifetimeS(LIFETIME_CDF.m, max) < meanLifetimeS(LIFETIME_CDF.g, max));
  assert.equal(meanLifetimeS([1], max), 150, 'all in the first bin [0, 300 s)');
});

test('bisection finds the least passing multiple', () => {
  assert.equal(
    searchLeast(0, 1000, 10, (x) => x >= 337),
    340,
  );
  assert.equal(
    searchLeast(99, 1000, 100, () => true),
    100,
  );
});

test('static allocation never leaves a guest short and never balloons', () => {
  const t = trace();
  const r = simulate(t, staticConfig(64 * GIB, { groupSize: 4, placement: 'spread' }));
  assert.ok(r.admitted > 0 && r.vmSteps > 0);
  assert.equal(r.shortSteps, 0);
  assert.equal(r.shortLagSteps, 0);
  assert.equal(r.meanBalloonedGiB, 0);
  assert.equal(r.reclaimLines, 0);
  assert.ok(r.localCommitPeak <= 1, 'no overcommit');
});

test('with generous capacity Outrig admits everything and nobody is short; with tiny capacity guests are short', () => {
  const t = trace();
  const roomy = simulate(t, outrigConfig(1024 * GIB, 1024 * GIB, policy));
  assert.equal(roomy.rejected, 0);
  assert.equal(roomy.shortSteps, 0);
  assert.equal(roomy.vmSteps, traceStats(t).vmSteps, 'every VM-step of the trace is sampled once');
  assert.equal(roomy.admitted, t.vms.filter((v) => v.start < t.horizonS).length);

  const tight = simulate(t, outrigConfig(12 * GIB, 16 * GIB, { ...policy, maxOvercommit: 3 }));
  assert.ok(tight.shortSteps > 0, 'overcommitted three times over on little memory');
  assert.ok(shortPct(tight) > 0 && shortPct(tight) <= 100);
  assert.ok(tight.inUseReclaimedMiBSteps > 0 && tight.inflations > 0);
});

test('admission does not depend on memory use: an admissions-only run admits the same VMs', () => {
  const t = trace({ seed: 3 });
  for (const c of [outrigConfig(20 * GIB, 24 * GIB, { ...policy, maxOvercommit: 2 }), staticConfig(24 * GIB, { groupSize: 4, placement: 'pack' })]) {
    const full = simulate(t, c);
    const quick = simulate(t, c, { admissionOnly: true });
    assert.ok(full.rejected > 0, 'the case has rejections');
    assert.deepEqual([quick.admitted, quick.rejected, quick.rejectReasons], [full.admitted, full.rejected, full.rejectReasons]);
    assert.equal(quick.vmSteps, 0);
  }
});

test('the comparison: (a) admits everything, (b) too at under 1% short, and the DRAM figures add up', () => {
  // A fleet of 8 hosts gives erratic answers from seed to seed (README); this one is a plain case.
  const t = trace({ seed: 1 });
  const a = neededStatic(t, { groupSize: 4, granMiB: 1024 });
  assert.equal(a.coreRejections, 0);
  assert.equal(a.result.rejected, 0);
  assert.equal(a.result.shortSteps, 0);
  const smaller = simulate(t, staticConfig(a.localMiB - 1024, { groupSize: 4, placement: a.placement }), { admissionOnly: true });
  assert.ok(smaller.rejected > 0, 'one step less memory rejects a VM');
  const c = compare(t, { policy, poolPct: 10, granMiB: 1024, maxShortPct: 1 }, a);
  assert.ok(c.outrigNeed.found);
  assert.equal(c.outrigNeed.result.rejected, 0);
  assert.ok(shortPct(c.outrigNeed.result) < 1);
  assert.ok(c.outrigNeed.localMiB <= a.localMiB);
  assert.equal(c.outrigPooled, (c.pools * c.outrigNeed.pooledMiB) / GIB);
  assert.ok(Math.abs(c.localSavedPct - 100 * (1 - c.outrigNeed.localMiB / a.localMiB)) < 1e-9);
  assert.ok(c.totalSavedPct < c.localSavedPct, 'the pooled tier is DRAM too');
  const steps = t.vms.reduce((n, v) => n + Math.max(0, stepRange(v, t)[1] - stepRange(v, t)[0]), 0);
  assert.equal(c.outrigNeed.result.vmSteps, steps);
});
