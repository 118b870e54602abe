/**
 * The comparison: the least DRAM each configuration needs to host a trace at the same service
 * level. Pure; the runner prints what these return.
 *
 * (a) static: the least local DRAM per host with which every VM of the trace is admitted on
 *     arrival (none rejected, none delayed; where even unlimited memory leaves VMs without free
 *     vCPUs, no more rejected than that). No guest is ever short: each holds its full size.
 * (b) Outrig: with pooled tiers of a given size, the least local DRAM per host with which as many
 *     VMs are admitted on arrival (no more rejected than (a)) and guests are short of memory in
 *     under `maxShortPct` of VM-time.
 */
import { outrigConfig, PLACEMENTS, shortPct, simulate, staticConfig, type OutrigPolicy, type Placement, type SimResult } from './simulate.ts';
import { traceStats, type Trace } from './trace.ts';

/**
 * The least multiple of `gran` in (lo, hi] for which `passes` holds, by bisection, assuming it
 * holds at hi. Placement makes the outcome not strictly monotone in capacity; bisection then
 * returns some passing value with a failing one just below it (README, Limitations).
 */
export function searchLeast(lo: number, hi: number, gran: number, passes: (x: number) => boolean): number {
  let a = Math.floor(lo / gran);
  let b = Math.ceil(hi / gran);
  while (b - a > 1) {
    const m = Math.floor((a + b) / 2);
    if (passes(m * gran)) b = m;
    else a = m;
  }
  return b * gran;
}

export interface Needed {
  localMiB: number;
  pooledMiB: number;
  /** The full run at that capacity. */
  result: SimResult;
  /** Simulations run by the search. */
  runs: number;
}

export interface StaticNeed extends Needed {
  placement: Placement;
  /** Each placement's need, MiB per host (Infinity where it cannot reach the reference). */
  byPlacement: Record<Placement, number>;
  /**
   * VMs turned away by static allocation with unlimited memory (for want of free vCPUs), with the
   * placement that turns away fewest: the reference. Both configurations may reject this many, no more.
   */
  coreRejections: number;
}

const GIB = 1024;
const UNLIMITED_MIB = 1 << 30;

/** (a): every placement is tried and the smallest need is kept, the fairest baseline. */
export function neededStatic(trace: Trace, o: { groupSize: number; granMiB: number }): StaticNeed {
  const largest = Math.max(...trace.vms.map((v) => v.sizeMiB));
  const stats = traceStats(trace);
  let runs = 0;
  const unlimited = Object.fromEntries(
    PLACEMENTS.map((placement) => [
      placement,
      simulate(trace, staticConfig(UNLIMITED_MIB, { groupSize: o.groupSize, placement }), { admissionOnly: true }).rejected,
    ]),
  ) as Record<Placement, number>;
  runs += PLACEMENTS.length;
  const coreRejections = Math.min(...Object.values(unlimited));
  const byPlacement = Object.fromEntries(PLACEMENTS.map((p) => [p, Infinity])) as Record<Placement, number>;
  for (const placement of PLACEMENTS.filter((p) => unlimited[p] <= coreRejections)) {
    const pass = (local: number) => {
      runs++;
      return (
        simulate(trace, staticConfig(local, { groupSize: o.groupSize, placement }), { maxRejections: coreRejections, admissionOnly: true }).rejected <=
        coreRejections
      );
    };
    let hi = Math.max(largest, Math.ceil((stats.peakCommittedGiB * GIB) / trace.hostIds.length / o.granMiB) * o.granMiB);
    while (hi < UNLIMITED_MIB && !pass(hi)) hi *= 2;
    byPlacement[placement] = searchLeast(largest - 1, Math.min(hi, UNLIMITED_MIB), o.granMiB, pass);
  }
  const placement = PLACEMENTS.reduce((best, p) => (byPlacement[p] < byPlacement[best] ? p : best));
  const localMiB = byPlacement[placement];
  runs++;
  return {
    localMiB,
    pooledMiB: 0,
    placement,
    byPlacement,
    coreRejections,
    runs,
    result: simulate(trace, staticConfig(localMiB, { groupSize: o.groupSize, placement })),
  };
}

export interface OutrigNeed extends Needed {
  /** False when even (a)'s local DRAM (and up to twice it) did not meet the conditions. */
  found: boolean;
}

/** (b): pooled tiers of `pooledMiB` each, the least local DRAM per host that meets (a)'s admissions and the shortness bound. */
export function neededOutrig(
  trace: Trace,
  policy: OutrigPolicy,
  o: { pooledMiB: number; startMiB: number; granMiB: number; maxShortPct: number; allowedRejections: number },
): OutrigNeed {
  const total = traceStats(trace).vmSteps;
  const maxShortSteps = Math.ceil((o.maxShortPct / 100) * total) - 1;
  let runs = 0;
  const pass = (local: number) => {
    runs++;
    const config = outrigConfig(local, o.pooledMiB, policy);
    if (simulate(trace, config, { maxRejections: o.allowedRejections, admissionOnly: true }).rejected > o.allowedRejections) return false;
    const r = simulate(trace, config, { maxRejections: o.allowedRejections, maxShortSteps });
    return !r.aborted && r.rejected <= o.allowedRejections && shortPct(r) < o.maxShortPct;
  };
  let hi = o.startMiB;
  let found = pass(hi);
  if (!found && pass(2 * hi)) {
    hi *= 2;
    found = true;
  }
  const localMiB = found ? searchLeast(0, hi, o.granMiB, pass) : hi;
  return { localMiB, pooledMiB: o.pooledMiB, found, runs: runs + 1, result: simulate(trace, outrigConfig(localMiB, o.pooledMiB, policy)) };
}

export interface Comparison {
  hosts: number;
  pools: number;
  staticNeed: StaticNeed;
  outrigNeed: OutrigNeed;
  /** GiB. */
  staticLocal: number;
  outrigLocal: number;
  outrigPooled: number;
  localSavedPct: number;
  totalSavedPct: number;
}

export interface CompareOptions {
  policy: OutrigPolicy;
  /** Each group's pooled tier as a share of the static DRAM of its hosts, %. */
  poolPct: number;
  granMiB: number;
  maxShortPct: number;
}

export function compare(trace: Trace, o: CompareOptions, staticNeed?: StaticNeed): Comparison {
  const a = staticNeed ?? neededStatic(trace, { groupSize: o.policy.groupSize, granMiB: o.granMiB });
  const pooledMiB = Math.round(((o.poolPct / 100) * o.policy.groupSize * a.localMiB) / o.granMiB) * o.granMiB;
  const b = neededOutrig(trace, o.policy, {
    pooledMiB,
    startMiB: a.localMiB,
    granMiB: o.granMiB,
    maxShortPct: o.maxShortPct,
    allowedRejections: a.coreRejections,
  });
  const hosts = trace.hostIds.length;
  const pools = Math.ceil(hosts / o.policy.groupSize);
  const staticLocal = (a.localMiB * hosts) / GIB;
  const outrigLocal = (b.localMiB * hosts) / GIB;
  const outrigPooled = (pooledMiB * pools) / GIB;
  return {
    hosts,
    pools,
    staticNeed: a,
    outrigNeed: b,
    staticLocal,
    outrigLocal,
    outrigPooled,
    localSavedPct: 100 * (1 - outrigLocal / staticLocal),
    totalSavedPct: 100 * (1 - (outrigLocal + outrigPooled) / staticLocal),
  };
}
