/**
 * A machine disk's layout as a bare-metal recovery needs it: the partition table (type, id, each
 * partition's start, size, type, UUID, name, flags), each filesystem's type, UUID, label, block
 * size and creation features, and the raw areas a boot loader lives in outside any filesystem
 * (the MBR and the gap after it, a BIOS-boot partition). Read from a disk image from the outside,
 * with no loop device and no mount, by Outrig's own reader in a sandbox (src/guest-disk: a guest's
 * disk is hostile input, and sfdisk, blkid and dumpe2fs are C parsers of it).
 */
import { hasControl, readLayout, WHOLE_DISK } from '../guest-disk/index.ts';

export { WHOLE_DISK };

/** GPT partition type of a BIOS-boot partition (GRUB's core.img lives in it). */
export const BIOS_BOOT_GUID = '21686148-6449-6E6F-744E-656564454649';

interface PartitionLayout {
  index: number;
  start: number;
  size: number;
  type: string;
  uuid?: string;
  name?: string;
  bootable?: boolean;
  attrs?: string;
}

export interface FilesystemIdentity {
  partition: number;
  type: string;
  uuid?: string;
  label?: string;
  blockSize?: number;
  /** ext2/3/4 creation features (dumpe2fs), so mkfs can make the same kind of filesystem. */
  features?: string[];
  inodeSize?: number;
  /** Inodes the filesystem was made with (a rebuild makes at least as many). */
  inodesCount?: number;
}

type PartitionTable = { label: 'dos' | 'gpt'; id: string; sectorSize: number; firstLba?: number; lastLba?: number };

export interface DiskLayout {
  sizeBytes: number;
  /** `none`: no partition table (a blank disk, or a filesystem on the whole disk, as partition 0). */
  table: PartitionTable | { label: 'none'; sectorSize: number };
  partitions: PartitionLayout[];
  filesystems: FilesystemIdentity[];
}

/** sfdisk's script takes a name in double quotes with no escapes: one with a quote or backslash is set apart (unquotableNames). */
function quotable(name: string): boolean {
  return !/["\\]/.test(name) && !hasControl(name);
}

/** Partition names the script leaves out, to be set with `sfdisk --part-label` as plain arguments. */
export function unquotableNames(l: Pick<DiskLayout, 'partitions'>): [number, string][] {
  return l.partitions.filter((p) => p.name && !quotable(p.name)).map((p) => [p.index, p.name!]);
}

/** The sfdisk script that recreates the table exactly (ids, starts, sizes, types, flags). */
export function sfdiskScript(l: Pick<DiskLayout, 'table' | 'partitions'>): string {
  if (l.table.label === 'none') throw new Error('a disk with no partition table has no sfdisk script');
  const lines = [`label: ${l.table.label}`, `label-id: ${l.table.id}`, 'unit: sectors'];
  if (l.table.label === 'gpt' && l.table.firstLba !== undefined) lines.push(`first-lba: ${l.table.firstLba}`);
  for (const p of l.partitions) {
    const f = [`start=${p.start}`, `size=${p.size}`, `type=${p.type}`];
    if (p.uuid) f.push(`uuid=${p.uuid}`);
    if (p.name && quotable(p.name)) f.push(`name="${p.name}"`);
    if (p.attrs) f.push(`attrs="${p.attrs}"`);
    if (p.bootable) f.push('bootable');
    lines.push(f.join(', '));
  }
  return lines.join('\n') + '\n';
}

/**
 * The areas a boot loader keeps outside filesystems, as byte ranges: from the start of the disk to
 * the first partition (the MBR and, for GRUB on MBR, core.img in the gap), and every BIOS-boot
 * partition. They are backed up raw.
 */
export function bootAreas(l: Pick<DiskLayout, 'table' | 'partitions'>): { offset: number; length: number; what: string }[] {
  // A disk with no table: a filesystem's own boot block is part of it, a raw disk is kept whole.
  if (l.table.label === 'none') return [];
  const ss = l.table.sectorSize;
  const first = Math.min(...l.partitions.map((p) => p.start));
  const out = [{ offset: 0, length: (Number.isFinite(first) ? first : 1) * ss, what: 'the boot sector and the gap before the first partition' }];
  for (const p of l.partitions)
    if (p.type.toUpperCase() === BIOS_BOOT_GUID) out.push({ offset: p.start * ss, length: p.size * ss, what: `BIOS-boot partition ${p.index}` });
  return out;
}

/** Where partition `index` is on the disk, in bytes; WHOLE_DISK (on a disk with no table) is all of it. */
export function regionOf(l: Pick<DiskLayout, 'sizeBytes' | 'table' | 'partitions'>, index: number): { offset: number; sizeBytes: number } {
  if (index === WHOLE_DISK && l.table.label === 'none') return { offset: 0, sizeBytes: l.sizeBytes };
  const p = l.partitions.find((x) => x.index === index);
  if (!p) throw new Error(`the disk has no partition ${index}`);
  return { offset: p.start * l.table.sectorSize, sizeBytes: p.size * l.table.sectorSize };
}

/** "partition N", or "the disk" for a filesystem on the whole disk. */
export function partitionName(index: number): string {
  return index === WHOLE_DISK ? 'the whole disk' : `partition ${index}`;
}

/**
 * Reads a disk's layout and filesystem identities from the outside. `warnings` name what was not
 * kept (a partition name or filesystem label that is not printable); an ext filesystem whose
 * superblock cannot be read is an error.
 */
export async function readDiskLayout(image: string, sizeBytes: number, warnings: string[] = [], name = image): Promise<DiskLayout> {
  const { layout: l, warnings: w } = await readLayout(image, sizeBytes, name);
  warnings.push(...w);
  const broken = l.filesystems.find((f) => f.error);
  if (broken) throw new Error(`${partitionName(broken.partition)} of ${name} holds an ext filesystem Outrig cannot read: ${broken.error}`);
  const filesystems: FilesystemIdentity[] = l.filesystems.map((f) => {
    const fs: FilesystemIdentity = { partition: f.partition, type: f.type };
    if (f.uuid) fs.uuid = f.uuid;
    if (f.label) fs.label = f.label;
    if (f.blockSize) fs.blockSize = f.blockSize;
    if (f.features) fs.features = f.features;
    if (f.inodeSize) fs.inodeSize = f.inodeSize;
    if (f.inodesCount) fs.inodesCount = f.inodesCount;
    return fs;
  });
  return { sizeBytes, table: l.table.label === 'none' ? { label: 'none', sectorSize: l.table.sectorSize } : l.table, partitions: l.partitions, filesystems };
}
