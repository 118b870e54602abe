/** Sizes for people: 1.5 MiB. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** How a disk's backup holds it, for a line of output: its table and partitions, or how a disk with no table was kept. */
export function diskSummary(
  m: {
    layout: { table: { label: string }; partitions: unknown[]; filesystems: { partition: number; type: string }[] };
    filesystems: unknown[];
    rawAreas?: { length: number }[];
  },
  files: number,
): string {
  if (m.layout.table.label !== 'none') return `${m.layout.table.label}, ${m.layout.partitions.length} partitions, ${files} files`;
  if (m.filesystems.length) return `no partition table: ${m.layout.filesystems[0]!.type} on the whole disk, ${files} files`;
  const fs = m.layout.filesystems[0]?.type;
  return `no partition table, ${fs ? `${fs} (not read file by file)` : 'no filesystem Outrig reads'}: kept block by block, ${bytes((m.rawAreas ?? []).reduce((n, a) => n + a.length, 0))} of data`;
}
