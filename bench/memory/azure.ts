/**
 * Measured characteristics of Azure's VM workload that the trace generator draws from. Every table
 * here is a summary statistic computed once from the Azure Public Dataset V1 VM trace (`vmtable`,
 * 30 days of one region's first-party VMs, 2017; Cortez et al., "Resource Central", SOSP'17;
 * CC BY 4.0), as processed into flavour, tenant-batch and duration sequences by
 * huaweicloud/trace_generation_rnn (resources/traces, resources/maps). The trace itself is not
 * shipped; azure-stats.ts recomputes these tables from it.
 */

/** A VM size ("flavour") of the trace: vCPUs and memory (Azure's GB are GiB). */
export interface Flavor {
  name: string;
  cores: number;
  memGiB: number;
  /** VMs of this flavour among the 1,870,433 arrivals of the trace's three splits. */
  count: number;
  /** Which lifetime table its VMs follow. */
  lifetime: keyof typeof LIFETIME_CDF;
}

export const FLAVORS: readonly Flavor[] = [
  { name: 'b', cores: 1, memGiB: 1.75, count: 892_166, lifetime: 'b' },
  { name: 'g', cores: 2, memGiB: 3.5, count: 464_859, lifetime: 'g' },
  { name: 'k', cores: 4, memGiB: 7, count: 203_416, lifetime: 'k' },
  { name: 'm', cores: 8, memGiB: 14, count: 197_539, lifetime: 'm' },
  { name: 'o', cores: 8, memGiB: 56, count: 71_942, lifetime: 'o' },
  { name: 'a', cores: 1, memGiB: 0.75, count: 38_578, lifetime: 'a' },
  { name: 'c', cores: 1, memGiB: 2, count: 534, lifetime: 'rest' },
  { name: 'i', cores: 4, memGiB: 28, count: 420, lifetime: 'rest' },
  { name: 'e', cores: 2, memGiB: 14, count: 301, lifetime: 'rest' },
  { name: 'h', cores: 2, memGiB: 4, count: 234, lifetime: 'rest' },
  { name: 'd', cores: 16, memGiB: 112, count: 148, lifetime: 'rest' },
  { name: 'f', cores: 2, memGiB: 16, count: 144, lifetime: 'rest' },
  { name: 'l', cores: 4, memGiB: 8, count: 66, lifetime: 'rest' },
  { name: 'n', cores: 8, memGiB: 16, count: 43, lifetime: 'rest' },
  { name: 'j', cores: 4, memGiB: 32, count: 36, lifetime: 'rest' },
  { name: 'p', cores: 8, memGiB: 64, count: 7, lifetime: 'rest' },
];

/** Upper edges (seconds) of the lifetime bins below: 5 min … 5 days (the trace's own duration bins, merged). */
export const LIFETIME_EDGES_S: readonly number[] = [
  300, 600, 900, 1200, 1500, 1800, 2400, 3000, 3900, 7500, 14_700, 21_900, 43_500, 86_700, 173_100, 259_500, 345_900, 432_300,
];

/**
 * P(lifetime < edge) per flavour: Kaplan-Meier estimates over the 410,276 VMs of the trace's test
 * split (the last 5.7 days of the 30; 5.7% of them still running at the end, right-censored).
 * 'rest' pools the rare flavours. What survives past the last edge (5 days) is the long-lived tail.
 */
export const LIFETIME_CDF = {
  b: [0.0337, 0.1457, 0.2913, 0.3989, 0.526, 0.5964, 0.6491, 0.6799, 0.6991, 0.7396, 0.7788, 0.8076, 0.8748, 0.9376, 0.9631, 0.9688, 0.971, 0.9717],
  g: [0.0314, 0.1873, 0.2786, 0.3717, 0.4508, 0.5152, 0.5763, 0.6153, 0.6545, 0.7504, 0.7882, 0.8156, 0.8617, 0.9135, 0.9302, 0.9381, 0.9429, 0.9448],
  k: [0.0104, 0.0511, 0.0984, 0.18, 0.2812, 0.3889, 0.4904, 0.5566, 0.6042, 0.7119, 0.778, 0.8016, 0.839, 0.9132, 0.9324, 0.9399, 0.9437, 0.9467],
  m: [0.0107, 0.0761, 0.1689, 0.2566, 0.3197, 0.374, 0.4327, 0.4613, 0.4872, 0.7689, 0.9038, 0.9428, 0.9602, 0.9731, 0.9789, 0.9818, 0.9827, 0.9834],
  o: [0.0046, 0.0168, 0.0292, 0.0412, 0.0484, 0.0506, 0.0556, 0.0579, 0.0605, 0.071, 0.1806, 0.288, 0.5738, 0.9277, 0.9783, 0.9872, 0.9912, 0.9919],
  a: [0.0226, 0.1439, 0.2996, 0.3505, 0.384, 0.4121, 0.4546, 0.4825, 0.5062, 0.6176, 0.8004, 0.8469, 0.9043, 0.94, 0.9567, 0.9624, 0.9636, 0.964],
  rest: [0.0041, 0.033, 0.0557, 0.0598, 0.066, 0.0887, 0.1072, 0.1258, 0.1278, 0.2002, 0.3878, 0.465, 0.5509, 0.602, 0.6547, 0.6713, 0.698, 0.7364],
} as const satisfies Record<string, readonly number[]>;

/** VM arrivals per hour of the trace's day (hour 0 = the trace's time 0 modulo 24 h), over its 30 days. Peak/trough ≈ 1.9. */
export const ARRIVALS_BY_HOUR: readonly number[] = [
  67_010, 59_734, 58_400, 57_241, 62_517, 73_633, 74_285, 68_364, 73_679, 83_188, 85_463, 85_500, 81_065, 87_111, 106_658, 103_492, 89_821, 85_574, 91_017,
  86_193, 80_628, 70_735, 67_679, 71_446,
];

/**
 * Deployment sizes: VMs a tenant starts together in one 5-minute bin (452,901 batches, mean 4.1
 * VMs; 91% of batches are of one flavour). Share of batches per size range [lo, hi]. Batches
 * over 50 VMs (0.9% of batches, 28% of VMs) are left out: see README.
 */
export const BATCH_SIZES: readonly { lo: number; hi: number; pct: number }[] = [
  { lo: 1, hi: 1, pct: 57.16 },
  { lo: 2, hi: 2, pct: 18.05 },
  { lo: 3, hi: 3, pct: 6.51 },
  { lo: 4, hi: 4, pct: 4.06 },
  { lo: 5, hi: 5, pct: 2.45 },
  { lo: 6, hi: 7, pct: 2.75 },
  { lo: 8, hi: 10, pct: 2.59 },
  { lo: 11, hi: 20, pct: 3.43 },
  { lo: 21, hi: 50, pct: 2.11 },
];
