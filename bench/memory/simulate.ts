/**
 * The cluster simulation: a trace replayed against a fleet whose memory is managed by Outrig's own
 * policy code (src/memory), step by step. Each arrival is admitted with `admit` on the first
 * candidate host that takes it; each step every pool's balloon targets come from `planBalloons`
 * with the memory each guest wants at that moment. Static allocation is the same code configured
 * without a pooled tier and without overcommit, so both sides run the same admission path.
 * Pure and deterministic: no I/O, no clock, no randomness of its own.
 */
import {
  admit,
  capacityMiB,
  DEFAULT_FLOOR,
  domainId,
  headroom,
  planBalloons,
  portionDomain,
  resolveTiers,
  type AdmitReason,
  type Entitlement,
  type FloorPolicy,
  type HostMemoryInventory,
  type PoolModel,
  type TierSpec,
  type VmMemory,
} from '../../src/memory/index.ts';
import { wantedMiB, type Trace, type TraceVm } from './trace.ts';

export const POOLED_TIER = 'cxl';

export const PLACEMENTS = ['spread', 'pack', 'pack-cores'] as const;
export type Placement = (typeof PLACEMENTS)[number];

export interface SimConfig {
  name: string;
  /** Local DRAM of each host, MiB. */
  localMiB: number;
  /** Size of each group's pooled tier, MiB; 0 for none. */
  pooledMiB: number;
  /** Hosts sharing one pool (one pooled tier); the last group may be smaller. */
  groupSize: number;
  maxOvercommit: number;
  /** Tenants' pooledShare: the part of each VM placed on the pooled tier first. */
  pooledShare: number;
  /** Share of each pool's capacity guaranteed to its tenants, split by their weights; 0 for none. */
  guaranteeFrac: number;
  /**
   * Order in which hosts are offered to `admit` (the first that admits takes the VM), among those
   * with enough free vCPUs. spread: most free memory first (local capacity minus the sizes of the
   * VMs on the host), as Outrig's scheduler weighs hosts (src/controller/scheduler.ts); pack: least
   * free memory first (best fit); pack-cores: fewest free vCPUs first, then least free memory.
   * Ties go to the host's name.
   */
  placement: Placement;
  floor: FloorPolicy;
}

/** (a): each VM's full size from its host's local DRAM, no overcommit, no pooled tier, no entitlements. */
export function staticConfig(localMiB: number, o: { groupSize: number; placement: Placement }): SimConfig {
  return {
    name: 'static',
    localMiB,
    pooledMiB: 0,
    groupSize: o.groupSize,
    maxOvercommit: 1,
    pooledShare: 0,
    guaranteeFrac: 0,
    placement: o.placement,
    floor: DEFAULT_FLOOR,
  };
}

export interface OutrigPolicy {
  groupSize: number;
  maxOvercommit: number;
  pooledShare: number;
  guaranteeFrac: number;
  placement: Placement;
}

/** (b): local tiers plus a pooled tier per group, overcommit with balloons, tenants with entitlements. */
export function outrigConfig(localMiB: number, pooledMiB: number, p: OutrigPolicy): SimConfig {
  return { name: 'outrig', localMiB, pooledMiB, floor: DEFAULT_FLOOR, ...p };
}

/** Stop as soon as the run cannot pass: for searches, where only pass or fail matters. */
export interface StopRule {
  maxRejections?: number;
  maxShortSteps?: number;
  /**
   * Admissions only: no balloon planning at the steps, so no shortness counted. Admission does not
   * depend on the guests' memory use (`admit` looks at sizes, placements, guarantees and floors),
   * so the same VMs are admitted as in a full run; a search uses it to reject a capacity cheaply.
   */
  admissionOnly?: boolean;
}

export interface SimResult {
  config: SimConfig;
  hosts: number;
  pools: number;
  /** Stopped early by the stop rule: the counts below are partial. */
  aborted: boolean;
  admitted: number;
  rejected: number;
  rejectReasons: Partial<Record<AdmitReason | 'NoHost', number>>;
  /** VM-steps sampled, and those in which a guest wanted more memory than its balloon target let it hold. */
  vmSteps: number;
  shortSteps: number;
  /** The same against the target set one step earlier (a controller reacting a step late). */
  shortLagSteps: number;
  /** Worst tenant's share of short VM-steps (tenants with at least 1% of the VM-steps). */
  worstTenantShortPct: number;
  /** Times a target went down from one step to the next (a balloon inflating). */
  inflations: number;
  /** Lines of the balloon ledger (reclaims) summed over steps, and memory in use taken, MiB-steps. */
  reclaimLines: number;
  inUseReclaimedMiBSteps: number;
  /** Mean memory held in balloons, GiB. */
  meanBalloonedGiB: number;
  /** Mean and peak of committed local memory over local capacity (fleet-wide), and of the pooled tiers. */
  localCommitMean: number;
  localCommitPeak: number;
  pooledCommitMean: number;
  pooledCommitPeak: number;
  /** Mean memory wanted by the guests over local + pooled capacity. */
  usedOverCapacity: number;
}

interface Running {
  tv: TraceVm;
  mem: VmMemory;
  host: number;
  prevTarget: number;
}

interface Pool {
  model: PoolModel;
  ents: Map<string, Entitlement>;
  vms: VmMemory[];
  running: Running[];
  /** Indices of its hosts in the fleet. */
  hosts: number[];
}

function buildPools(trace: Trace, c: SimConfig): Pool[] {
  const pools: Pool[] = [];
  const configured: TierSpec[] = [{ name: 'local', kind: 'local', latencyClass: 'near' }];
  if (c.pooledMiB > 0) configured.push({ name: POOLED_TIER, kind: 'pooled', capacityMiB: c.pooledMiB, latencyClass: 'far' });
  const cores = trace.params.coresPerHost;
  const weights = trace.tenants.reduce((s, t) => s + t.weight, 0);
  for (let first = 0; first < trace.hostIds.length; first += c.groupSize) {
    const hosts = trace.hostIds.map((_, i) => i).slice(first, first + c.groupSize);
    // The pool as the controller builds it: tiers and per-host capacities from the hosts' inventory.
    const inventory: HostMemoryInventory[] = hosts.map((i) => ({
      id: trace.hostIds[i]!,
      name: trace.hostIds[i]!,
      allocatableMiB: c.localMiB,
      numa: [{ id: 0, cpus: `0-${cores - 1}`, memoryMiB: c.localMiB }],
    }));
    const resolved = resolveTiers(configured, inventory);
    const model: PoolModel = { name: `pool${pools.length + 1}`, tiers: resolved.tiers, hosts: resolved.hosts, maxOvercommit: c.maxOvercommit, floor: c.floor };
    const ents = new Map<string, Entitlement>();
    if (c.name !== 'static') {
      const cap = capacityMiB(model);
      for (const t of trace.tenants) {
        ents.set(t.name, {
          guaranteedMiB: Math.floor((c.guaranteeFrac * cap * t.weight) / weights),
          limitMiB: Number.MAX_SAFE_INTEGER,
          prefer: [],
          pooledShare: c.pooledShare,
        });
      }
    }
    pools.push({ model, ents, vms: [], running: [], hosts });
  }
  return pools;
}

/** A binary min-heap of running VMs by departure time. */
class Departures {
  private h: Running[] = [];
  get size(): number {
    return this.h.length;
  }
  peek(): Running | undefined {
    return this.h[0];
  }
  push(r: Running): void {
    const h = this.h;
    h.push(r);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.tv.end <= h[i]!.tv.end) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop(): Running | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.tv.end < h[m]!.tv.end) m = l;
        if (r < h.length && h[r]!.tv.end < h[m]!.tv.end) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

export function simulate(trace: Trace, c: SimConfig, stop: StopRule = {}): SimResult {
  const pools = buildPools(trace, c);
  const poolOf = trace.hostIds.map((_, i) => Math.floor(i / c.groupSize));
  const freeCores = trace.hostIds.map(() => trace.params.coresPerHost);
  const sizeOnHost = trace.hostIds.map(() => 0);
  const departures = new Departures();
  const step = trace.params.stepS;
  const steps = Math.ceil(trace.horizonS / step);
  const tenantSteps = new Map<string, { vm: number; short: number }>(trace.tenants.map((t) => [t.name, { vm: 0, short: 0 }]));
  const out: SimResult = {
    config: c,
    hosts: trace.hostIds.length,
    pools: pools.length,
    aborted: false,
    admitted: 0,
    rejected: 0,
    rejectReasons: {},
    vmSteps: 0,
    shortSteps: 0,
    shortLagSteps: 0,
    worstTenantShortPct: 0,
    inflations: 0,
    reclaimLines: 0,
    inUseReclaimedMiBSteps: 0,
    meanBalloonedGiB: 0,
    localCommitMean: 0,
    localCommitPeak: 0,
    pooledCommitMean: 0,
    pooledCommitPeak: 0,
    usedOverCapacity: 0,
  };
  const localTotal = c.localMiB * trace.hostIds.length;
  const pooledTotal = c.pooledMiB > 0 ? c.pooledMiB * pools.length : 0;
  let ballooned = 0;
  let localCommitSum = 0;
  let pooledCommitSum = 0;
  let usedSum = 0;

  const depart = (r: Running) => {
    const pool = pools[poolOf[r.host]!]!;
    const i = pool.running.indexOf(r);
    pool.running.splice(i, 1);
    pool.vms.splice(pool.vms.indexOf(r.mem), 1);
    freeCores[r.host]! += r.tv.cores;
    sizeOnHost[r.host]! -= r.tv.sizeMiB;
  };

  const arrive = (tv: TraceVm) => {
    const cands: { pool: number; host: number; free: number; cores: number }[] = [];
    pools.forEach((pool, pi) => {
      const room = headroom(pool.model, pool.vms);
      const pooled = c.pooledMiB > 0 ? Math.max(0, room.get(POOLED_TIER) ?? 0) : 0;
      for (const h of pool.hosts) {
        if (freeCores[h]! < tv.cores) continue;
        // A cheap necessary condition; `admit` decides.
        const local = Math.max(0, room.get(domainId(pool.model.tiers[0]!, trace.hostIds[h]!)) ?? 0);
        if (local + pooled >= tv.sizeMiB) cands.push({ pool: pi, host: h, free: c.localMiB - sizeOnHost[h]!, cores: freeCores[h]! });
      }
    });
    if (c.placement === 'spread') cands.sort((a, b) => b.free - a.free || a.host - b.host);
    else if (c.placement === 'pack') cands.sort((a, b) => a.free - b.free || a.host - b.host);
    else cands.sort((a, b) => a.cores - b.cores || a.free - b.free || a.host - b.host);
    let reason: AdmitReason | 'NoHost' = 'NoHost';
    for (const cand of cands) {
      const pool = pools[cand.pool]!;
      const a = admit(pool.model, pool.ents, pool.vms, { id: tv.id, tenant: tv.tenant, sizeMiB: tv.sizeMiB, hostId: trace.hostIds[cand.host]! });
      if (!a.ok) {
        if (reason === 'NoHost') reason = a.reason;
        continue;
      }
      const mem: VmMemory = { id: tv.id, tenant: tv.tenant, hostId: trace.hostIds[cand.host]!, sizeMiB: tv.sizeMiB, portions: a.portions };
      const r: Running = { tv, mem, host: cand.host, prevTarget: tv.sizeMiB };
      pool.vms.push(mem);
      pool.running.push(r);
      freeCores[cand.host]! -= tv.cores;
      sizeOnHost[cand.host]! += tv.sizeMiB;
      departures.push(r);
      out.admitted++;
      return;
    }
    out.rejected++;
    out.rejectReasons[reason] = (out.rejectReasons[reason] ?? 0) + 1;
  };

  let next = 0;
  const vms = trace.vms;
  for (let s = 0; s < steps && !out.aborted; s++) {
    const t = s * step;
    // Events up to this step's sampling time, in time order, departures first on a tie.
    for (;;) {
      const d = departures.peek();
      const a = vms[next];
      const dt = d ? d.tv.end : Infinity;
      const at = a ? Math.max(0, a.start) : Infinity;
      if (Math.min(dt, at) > t) break;
      if (dt <= at) depart(departures.pop()!);
      else {
        arrive(a!);
        next++;
        if (stop.maxRejections !== undefined && out.rejected > stop.maxRejections) {
          out.aborted = true;
          break;
        }
      }
    }
    if (out.aborted) break;
    if (stop.admissionOnly) continue;

    let localCommitted = 0;
    let pooledCommitted = 0;
    for (const pool of pools) {
      for (const r of pool.running) {
        r.mem.usedMiB = wantedMiB(r.tv, t);
        usedSum += r.mem.usedMiB;
        for (const p of r.mem.portions) {
          if (p.tier === POOLED_TIER) pooledCommitted += p.sizeMiB;
          else localCommitted += p.sizeMiB;
        }
      }
      if (!pool.running.length) continue;
      const plan = planBalloons(pool.model, pool.ents, pool.vms);
      const shortDomains = new Set(plan.pressure.filter((p) => p.shortMiB > 0).map((p) => p.domain));
      out.reclaimLines += plan.reclaims.length;
      for (const rec of plan.reclaims) if (rec.kind === 'in-use') out.inUseReclaimedMiBSteps += rec.mib;
      for (const r of pool.running) {
        const target = plan.targets.get(r.tv.id)!;
        const used = r.mem.usedMiB!;
        // A domain the policy could not relieve holds more than it has: all its guests count as short.
        const short = used > target || (shortDomains.size > 0 && r.mem.portions.some((p) => shortDomains.has(portionDomain(pool.model, r.mem, p))));
        const ts = tenantSteps.get(r.tv.tenant)!;
        ts.vm++;
        out.vmSteps++;
        if (short) {
          out.shortSteps++;
          ts.short++;
        }
        if (used > r.prevTarget) out.shortLagSteps++;
        if (target < r.prevTarget) out.inflations++;
        ballooned += r.tv.sizeMiB - target;
        r.prevTarget = target;
      }
    }
    localCommitSum += localCommitted;
    pooledCommitSum += pooledCommitted;
    out.localCommitPeak = Math.max(out.localCommitPeak, localCommitted / localTotal);
    if (pooledTotal) out.pooledCommitPeak = Math.max(out.pooledCommitPeak, pooledCommitted / pooledTotal);
    if (stop.maxShortSteps !== undefined && out.shortSteps > stop.maxShortSteps) out.aborted = true;
  }
  // Arrivals after the last sampling time still have to be admitted.
  while (!out.aborted && next < vms.length && vms[next]!.start < trace.horizonS) {
    while (departures.size && departures.peek()!.tv.end <= vms[next]!.start) depart(departures.pop()!);
    arrive(vms[next]!);
    next++;
    if (stop.maxRejections !== undefined && out.rejected > stop.maxRejections) out.aborted = true;
  }
  const sampled = Math.max(1, steps);
  out.meanBalloonedGiB = ballooned / sampled / 1024;
  out.localCommitMean = localCommitSum / sampled / localTotal;
  out.pooledCommitMean = pooledTotal ? pooledCommitSum / sampled / pooledTotal : 0;
  out.usedOverCapacity = usedSum / sampled / (localTotal + pooledTotal);
  let worst = 0;
  for (const ts of tenantSteps.values()) if (ts.vm >= 0.01 * out.vmSteps && ts.vm > 0) worst = Math.max(worst, ts.short / ts.vm);
  out.worstTenantShortPct = 100 * worst;
  return out;
}

export function shortPct(r: SimResult): number {
  return r.vmSteps ? (100 * r.shortSteps) / r.vmSteps : 0;
}
