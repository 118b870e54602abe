/**
 * The trace generator: VM arrivals, departures and memory use over time for a fleet of hosts.
 * Sizes, lifetimes, deployment sizes and the daily arrival rhythm follow the Azure VM trace
 * (azure.ts); how much of its memory a VM touches follows Pond (ASPLOS'23): about half of rented
 * memory is never touched, the median VM touching about half of its memory. Everything else is a
 * choice of ours, named as such here and in README.md. Pure: the randomness is injected.
 */
import { ARRIVALS_BY_HOUR, BATCH_SIZES, FLAVORS, LIFETIME_CDF, LIFETIME_EDGES_S, type Flavor } from './azure.ts';
import { beta, exponential, integer, normal, pick, uniform, type Rng } from './rng.ts';

const DAY = 86_400;

export interface UsageParams {
  /**
   * Beta(α, β) of the peak fraction of its memory a deployment's VMs may use. Fitted (not tuned for
   * the result) so that the most each VM wants over its run has Pond's median of 0.5.
   */
  peakAlpha: number;
  peakBeta: number;
  /** Standard deviation of one VM's peak fraction around its deployment's. */
  peakJitterSd: number;
  minPeakFrac: number;
  /** After boot a VM's use rises linearly from `rampFrom` × its peak to its peak within `rampS` seconds (ranges, drawn per VM). */
  rampS: [number, number];
  rampFrom: [number, number];
  /** Daily swing: use falls to (1 − amp) × peak at the VM's quietest hour; amp drawn per VM in [0, diurnalAmpMax]. */
  diurnalAmpMax: number;
  /** Tenants' busiest hour: the trace's busiest arrival hour ± this many hours (their time zones, habits). */
  tenantPhaseSpreadH: number;
  /** Bursts to the VM's peak use: Poisson, this many per VM-day, exponential durations with this mean, capped. */
  burstsPerDay: number;
  burstMeanS: number;
  burstMaxS: number;
}

export interface TraceParams {
  seed: number;
  hosts: number;
  coresPerHost: number;
  /** Length of the simulated window; VMs running at its start come from the same process run beforehand. */
  days: number;
  stepS: number;
  /** Mean share of the fleet's cores rented (sets the arrival rate). */
  coreLoad: number;
  tenants: number;
  /** Tenants' shares of deployments follow Zipf with this exponent. */
  tenantZipf: number;
  /** Longest VM lifetime; the tail past the trace's 5 days is log-uniform up to it. */
  maxLifetimeDays: number;
  /** Deployment sizes over this are left out (the trace has some over 1,000 VMs). */
  maxBatch: number;
  usage: UsageParams;
}

export const DEFAULT_USAGE: UsageParams = {
  peakAlpha: 1.7,
  peakBeta: 1.2,
  peakJitterSd: 0.05,
  minPeakFrac: 0.05,
  rampS: [300, 3600],
  rampFrom: [0.3, 0.7],
  diurnalAmpMax: 0.3,
  tenantPhaseSpreadH: 3,
  burstsPerDay: 1,
  burstMeanS: 1800,
  burstMaxS: 4 * 3600,
};

export const DEFAULT_TRACE: TraceParams = {
  seed: 1,
  hosts: 32,
  coresPerHost: 48,
  days: 7,
  stepS: 300,
  coreLoad: 0.6,
  tenants: 24,
  tenantZipf: 1,
  maxLifetimeDays: 90,
  maxBatch: 16,
  usage: DEFAULT_USAGE,
};

export interface TraceVm {
  id: string;
  tenant: string;
  /** Deployment (batch) number. */
  batch: number;
  flavor: string;
  cores: number;
  sizeMiB: number;
  /** Seconds from the window's start; negative for VMs already running when it opens. */
  start: number;
  end: number;
  peakFrac: number;
  rampS: number;
  rampFrom: number;
  amp: number;
  /** Fraction of a day at which the VM's daily use peaks. */
  phase: number;
  /** Bursts inside the window, as [start, end, start, end, …] seconds. */
  bursts: number[];
}

export interface Trace {
  params: TraceParams;
  horizonS: number;
  hostIds: string[];
  tenants: { name: string; weight: number }[];
  /** Sorted by start, then id. */
  vms: TraceVm[];
  /** Mean VM arrivals a day that the rate was set to. */
  arrivalsPerDay: number;
}

/** Mean lifetime (seconds) of a lifetime table: uniform within bins, log-uniform in the tail. */
export function meanLifetimeS(cdf: readonly number[], maxS: number): number {
  let mean = 0;
  let prevP = 0;
  let prevEdge = 0;
  cdf.forEach((p, i) => {
    const edge = LIFETIME_EDGES_S[i]!;
    mean += ((p - prevP) * (prevEdge + edge)) / 2;
    prevP = p;
    prevEdge = edge;
  });
  const tail = 1 - prevP;
  if (tail > 0 && maxS > prevEdge) mean += (tail * (maxS - prevEdge)) / Math.log(maxS / prevEdge);
  return mean;
}

function drawLifetime(rng: Rng, cdf: readonly number[], maxS: number): number {
  const u = rng();
  let prevEdge = 0;
  for (let i = 0; i < cdf.length; i++) {
    const edge = LIFETIME_EDGES_S[i]!;
    if (u < cdf[i]!) return uniform(rng, prevEdge, edge);
    prevEdge = edge;
  }
  return prevEdge * Math.pow(maxS / prevEdge, rng());
}

function batchSize(rng: Rng, max: number): number {
  const ranges = BATCH_SIZES.filter((b) => b.lo <= max);
  const r =
    ranges[
      pick(
        rng,
        ranges.map((b) => b.pct),
      )
    ]!;
  return integer(rng, r.lo, Math.min(r.hi, max));
}

function meanBatchSize(max: number): number {
  const ranges = BATCH_SIZES.filter((b) => b.lo <= max);
  const total = ranges.reduce((s, b) => s + b.pct, 0);
  return ranges.reduce((s, b) => s + (b.pct / total) * ((b.lo + Math.min(b.hi, max)) / 2), 0);
}

/** Arrival rate (VMs a second, before the daily rhythm) that rents `coreLoad` of the fleet's cores on average. */
export function arrivalRate(p: TraceParams): number {
  const total = FLAVORS.reduce((s, f) => s + f.count, 0);
  const coreSeconds = FLAVORS.reduce((s, f) => s + (f.count / total) * f.cores * meanLifetimeS(LIFETIME_CDF[f.lifetime], p.maxLifetimeDays * DAY), 0);
  return (p.coreLoad * p.hosts * p.coresPerHost) / coreSeconds;
}

export function generateTrace(p: TraceParams, rng: Rng): Trace {
  const horizonS = p.days * DAY;
  const maxS = p.maxLifetimeDays * DAY;
  const u = p.usage;
  const tenants = Array.from({ length: p.tenants }, (_, i) => ({ name: `t${String(i + 1).padStart(2, '0')}`, weight: 1 / Math.pow(i + 1, p.tenantZipf) }));
  const busiest = ARRIVALS_BY_HOUR.indexOf(Math.max(...ARRIVALS_BY_HOUR)) + 0.5;
  const tenantPhase = tenants.map(() => (busiest + uniform(rng, -u.tenantPhaseSpreadH, u.tenantPhaseSpreadH)) / 24);
  const hourMean = ARRIVALS_BY_HOUR.reduce((s, x) => s + x, 0) / 24;
  const hourMax = Math.max(...ARRIVALS_BY_HOUR) / hourMean;
  const vmRate = arrivalRate(p);
  const batchRate = vmRate / meanBatchSize(p.maxBatch);
  const flavorWeights = FLAVORS.map((f) => f.count);

  const vms: TraceVm[] = [];
  let batch = 0;
  // Deployments arrive as a Poisson process modulated by the hour of day (thinning), from a
  // lifetime before the window so that the VMs running at its start are a steady state.
  for (let t = -maxS + exponential(rng, 1 / (batchRate * hourMax)); t < horizonS; t += exponential(rng, 1 / (batchRate * hourMax))) {
    const hour = Math.floor((((t % DAY) + DAY) % DAY) / 3600);
    if (rng() * hourMax >= ARRIVALS_BY_HOUR[hour]! / hourMean) continue;
    batch++;
    const f: Flavor = FLAVORS[pick(rng, flavorWeights)]!;
    const ti = pick(
      rng,
      tenants.map((x) => x.weight),
    );
    const n = batchSize(rng, p.maxBatch);
    const life = drawLifetime(rng, LIFETIME_CDF[f.lifetime], maxS);
    const peak = beta(rng, u.peakAlpha, u.peakBeta);
    for (let k = 0; k < n; k++) {
      const start = t;
      const end = t + life * uniform(rng, 0.9, 1.1);
      const vm: TraceVm = {
        id: '',
        tenant: tenants[ti]!.name,
        batch,
        flavor: f.name,
        cores: f.cores,
        sizeMiB: Math.round(f.memGiB * 1024),
        start,
        end,
        peakFrac: Math.min(1, Math.max(u.minPeakFrac, peak + normal(rng, 0, u.peakJitterSd))),
        rampS: uniform(rng, u.rampS[0], u.rampS[1]),
        rampFrom: uniform(rng, u.rampFrom[0], u.rampFrom[1]),
        amp: uniform(rng, 0, u.diurnalAmpMax),
        phase: tenantPhase[ti]!,
        bursts: [],
      };
      const from = Math.max(start, 0);
      const to = Math.min(end, horizonS);
      const drawn: number[] = [];
      for (let b = from + exponential(rng, DAY / u.burstsPerDay); b < to; b += exponential(rng, DAY / u.burstsPerDay)) {
        drawn.push(b, b + Math.min(u.burstMaxS, exponential(rng, u.burstMeanS)));
      }
      vm.bursts = drawn;
      if (end > 0) vms.push(vm);
    }
  }
  vms.sort((a, b) => a.start - b.start || a.batch - b.batch);
  vms.forEach((vm, i) => (vm.id = `v${String(i).padStart(6, '0')}`));
  return {
    params: p,
    horizonS,
    hostIds: Array.from({ length: p.hosts }, (_, i) => `h${String(i + 1).padStart(3, '0')}`),
    tenants,
    vms,
    arrivalsPerDay: vmRate * DAY,
  };
}

/** Memory the guest wants at time t (in use, including the page cache it would keep): never above size × peakFrac. */
export function wantedMiB(vm: TraceVm, t: number): number {
  const age = t - vm.start;
  const ramp = age >= vm.rampS ? 1 : vm.rampFrom + ((1 - vm.rampFrom) * Math.max(0, age)) / vm.rampS;
  let level = 1 - (vm.amp * (1 - Math.cos(2 * Math.PI * (t / DAY - vm.phase)))) / 2;
  for (let i = 0; i < vm.bursts.length; i += 2) {
    if (t >= vm.bursts[i]! && t < vm.bursts[i + 1]!) {
      level = 1;
      break;
    }
  }
  return Math.max(1, Math.round(vm.sizeMiB * vm.peakFrac * ramp * level));
}

/** The steps (indices) at which a VM is running and sampled: start ≤ t < end, 0 ≤ t < horizon. */
export function stepRange(vm: TraceVm, trace: Trace): [number, number] {
  const step = trace.params.stepS;
  const first = Math.max(0, Math.ceil(vm.start / step));
  const last = Math.min(Math.ceil(trace.horizonS / step), Math.ceil(vm.end / step));
  return [first, Math.max(first, last)];
}

export interface TraceStats {
  vms: number;
  runningAtStart: number;
  arrivals: number;
  vmSteps: number;
  vmHours: number;
  /** Share of VM-hours in VMs that live longer than a day. */
  longLivedVmHourShare: number;
  /** Mean and peak share of the fleet's cores that the running VMs rent. */
  meanCoreLoad: number;
  peakCoreLoad: number;
  /** Mean and peak of the memory the running VMs are sized for, GiB. */
  meanCommittedGiB: number;
  peakCommittedGiB: number;
  /** Median over VMs of the most memory each wants in the window, as a share of its size (Pond: about 0.5). */
  medianTouchedFrac: number;
  /** The same, size-weighted: the share of rented memory ever wanted (Pond: about half is never touched). */
  touchedMemShare: number;
  /** Memory wanted over memory rented, over the whole window (VM-time weighted). */
  meanUsedFrac: number;
  /** Most memory wanted fleet-wide at one step, GiB. */
  peakUsedGiB: number;
}

export function traceStats(trace: Trace): TraceStats {
  const step = trace.params.stepS;
  const steps = Math.ceil(trace.horizonS / step);
  const cores = new Float64Array(steps + 1);
  const committed = new Float64Array(steps + 1);
  const used = new Float64Array(steps);
  let vmSteps = 0;
  let longSteps = 0;
  let wanted = 0;
  let sized = 0;
  const touched: number[] = [];
  let touchedMiB = 0;
  let rentedMiB = 0;
  for (const vm of trace.vms) {
    const [a, b] = stepRange(vm, trace);
    if (b <= a) continue;
    cores[a]! += vm.cores;
    cores[b]! -= vm.cores;
    committed[a]! += vm.sizeMiB;
    committed[b]! -= vm.sizeMiB;
    vmSteps += b - a;
    if (vm.end - vm.start > DAY) longSteps += b - a;
    let most = 0;
    for (let s = a; s < b; s++) {
      const w = wantedMiB(vm, s * step);
      used[s]! += w;
      wanted += w;
      sized += vm.sizeMiB;
      most = Math.max(most, w);
    }
    touched.push(most / vm.sizeMiB);
    touchedMiB += most;
    rentedMiB += vm.sizeMiB;
  }
  let c = 0;
  let m = 0;
  let sumC = 0;
  let peakC = 0;
  let sumM = 0;
  let peakM = 0;
  for (let s = 0; s < steps; s++) {
    c += cores[s]!;
    m += committed[s]!;
    sumC += c;
    sumM += m;
    peakC = Math.max(peakC, c);
    peakM = Math.max(peakM, m);
  }
  touched.sort((x, y) => x - y);
  const fleetCores = trace.params.hosts * trace.params.coresPerHost;
  return {
    vms: trace.vms.length,
    runningAtStart: trace.vms.filter((v) => v.start <= 0).length,
    arrivals: trace.vms.filter((v) => v.start > 0).length,
    vmSteps,
    vmHours: (vmSteps * step) / 3600,
    longLivedVmHourShare: vmSteps ? longSteps / vmSteps : 0,
    meanCoreLoad: sumC / steps / fleetCores,
    peakCoreLoad: peakC / fleetCores,
    meanCommittedGiB: sumM / steps / 1024,
    peakCommittedGiB: peakM / 1024,
    medianTouchedFrac: touched.length ? touched[Math.floor(touched.length / 2)]! : 0,
    touchedMemShare: rentedMiB ? touchedMiB / rentedMiB : 0,
    meanUsedFrac: sized ? wanted / sized : 0,
    peakUsedGiB: Math.max(0, ...used) / 1024,
  };
}
