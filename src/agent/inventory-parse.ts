/** Parsers for the kernel's text files that make up host inventory. Pure, tested on captured text. */

/** CPU flags that matter for placement and virtualization; the full list is long and noisy. */
const INTERESTING_FLAGS = new Set(['vmx', 'svm', 'hypervisor', 'aes', 'avx', 'avx2', 'avx512f', 'sse4_2', 'sha_ni', 'pdpe1gb', 'x2apic', 'nx', 'lm']);

export function parseCpuinfo(text: string): { model: string; count: number; sockets: number; coresPerSocket: number; flags: string[] } {
  const blocks = text.split(/\n\s*\n/).filter((b) => /^processor\s*:/m.test(b));
  const field = (b: string, k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(b)?.[1]?.trim();
  const first = blocks[0] ?? '';
  const sockets = new Set(blocks.map((b) => field(b, 'physical id') ?? '0')).size || 1;
  const flags = (field(first, 'flags') ?? '')
    .split(/\s+/)
    .filter((f) => INTERESTING_FLAGS.has(f))
    .sort();
  return {
    model: field(first, 'model name') ?? 'unknown',
    count: blocks.length,
    sockets,
    coresPerSocket: Number(field(first, 'cpu cores') ?? blocks.length / sockets) || 1,
    flags,
  };
}

/** MemTotal from /proc/meminfo, or "Node N MemTotal" from a NUMA node's meminfo, in MiB. */
export function parseMemTotalMiB(text: string): number {
  const m = /MemTotal:\s+(\d+)\s*kB/.exec(text);
  if (!m) throw new Error('MemTotal not found');
  return Math.floor(Number(m[1]) / 1024);
}

/** Counts CPUs in a kernel cpulist such as "0-3,8,10-11". */
export function countCpuList(list: string): number {
  let n = 0;
  for (const part of list.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

/** Block devices that are not real disks. */
export function isVirtualBlockDevice(name: string): boolean {
  return /^(loop|ram|zram|dm-|md|sr|fd|nbd)/.test(name);
}
