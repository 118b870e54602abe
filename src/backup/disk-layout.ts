/**
 * A machine disk's layout as a bare-metal recovery needs it: the partition table (type, id, each
 * partition's start, size, type, UUID, name, flags), each filesystem's type, UUID, label, block
 * size and creation features, and the raw areas a boot loader lives in outside any filesystem
 * (the MBR and the gap after it, a BIOS-boot partition). Read from a disk image from the outside,
 * with no loop device and no mount: sfdisk, blkid and dumpe2fs (measured in
 * shared/research/bootable-disk.md). Parsing is pure and tested on recorded output.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SECTOR = 512;
/** GPT partition type of a BIOS-boot partition (GRUB's core.img lives in it). */
export const BIOS_BOOT_GUID = '21686148-6449-6E6F-744E-656564454649';

export interface PartitionLayout {
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
}

export interface DiskLayout {
  sizeBytes: number;
  table: { label: 'dos' | 'gpt'; id: string; sectorSize: number; firstLba?: number; lastLba?: number };
  partitions: PartitionLayout[];
  filesystems: FilesystemIdentity[];
}

interface SfdiskJson {
  partitiontable: {
    label: string;
    id: string;
    sectorsize?: number;
    firstlba?: number;
    lastlba?: number;
    partitions?: { node: string; start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean; attrs?: string }[];
  };
}

export function parseSfdisk(json: string): Pick<DiskLayout, 'table' | 'partitions'> {
  const t = (JSON.parse(json) as SfdiskJson).partitiontable;
  if (t.label !== 'dos' && t.label !== 'gpt') throw new Error(`partition table type ${t.label} is not supported (dos and gpt are)`);
  return {
    table: { label: t.label, id: t.id, sectorSize: t.sectorsize ?? SECTOR, firstLba: t.firstlba, lastLba: t.lastlba },
    partitions: (t.partitions ?? []).map((p) => {
      const m = /(\d+)$/.exec(p.node);
      const out: PartitionLayout = { index: m ? Number(m[1]) : 0, start: p.start, size: p.size, type: p.type };
      if (p.uuid) out.uuid = p.uuid;
      if (p.name) out.name = p.name;
      if (p.bootable) out.bootable = true;
      if (p.attrs) out.attrs = p.attrs;
      return out;
    }),
  };
}

/** `blkid -o export` lines into a record. */
export function parseBlkid(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** The header fields of `dumpe2fs -h` that recreating a filesystem needs. */
export function parseDumpe2fs(text: string): { features: string[]; inodeSize?: number; blockSize?: number } {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text)?.[1]?.trim();
  const features = (field('Filesystem features') ?? '').split(/\s+/).filter(Boolean);
  const inode = field('Inode size');
  const block = field('Block size');
  return { features, inodeSize: inode ? Number(inode) : undefined, blockSize: block ? Number(block) : undefined };
}

/** The sfdisk script that recreates the table exactly (ids, starts, sizes, types, flags). */
export function sfdiskScript(l: Pick<DiskLayout, 'table' | 'partitions'>): string {
  const lines = [`label: ${l.table.label}`, `label-id: ${l.table.id}`, 'unit: sectors'];
  if (l.table.label === 'gpt' && l.table.firstLba !== undefined) lines.push(`first-lba: ${l.table.firstLba}`);
  for (const p of l.partitions) {
    const f = [`start=${p.start}`, `size=${p.size}`, `type=${p.type}`];
    if (p.uuid) f.push(`uuid=${p.uuid}`);
    if (p.name) f.push(`name="${p.name.replace(/"/g, '')}"`);
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
  const ss = l.table.sectorSize;
  const first = Math.min(...l.partitions.map((p) => p.start));
  const out = [{ offset: 0, length: (Number.isFinite(first) ? first : 1) * ss, what: 'the boot sector and the gap before the first partition' }];
  for (const p of l.partitions) if (p.type.toUpperCase() === BIOS_BOOT_GUID) out.push({ offset: p.start * ss, length: p.size * ss, what: `BIOS-boot partition ${p.index}` });
  return out;
}

/** Reads a disk image's layout and filesystem identities from the outside. */
export async function readDiskLayout(image: string, sizeBytes: number): Promise<DiskLayout> {
  const { stdout } = await run('sfdisk', ['--json', image]).catch((e: Error & { stderr?: string }) => {
    throw new Error(`cannot read the partition table of ${image}: ${e.stderr?.trim() || e.message}`, { cause: e });
  });
  const base = parseSfdisk(stdout);
  const filesystems: FilesystemIdentity[] = [];
  for (const p of base.partitions) {
    const offset = p.start * base.table.sectorSize;
    const probe = await run('blkid', ['-p', '-O', String(offset), '-S', String(p.size * base.table.sectorSize), '-o', 'export', image]).then(
      (r) => parseBlkid(r.stdout),
      () => undefined, // nothing recognisable (a BIOS-boot partition, raw data): backed up raw
    );
    if (!probe?.TYPE) continue;
    const fs: FilesystemIdentity = { partition: p.index, type: probe.TYPE, uuid: probe.UUID, label: probe.LABEL, blockSize: probe.BLOCK_SIZE ? Number(probe.BLOCK_SIZE) : undefined };
    if (/^ext[234]$/.test(fs.type)) {
      const d = parseDumpe2fs((await run('dumpe2fs', ['-h', `${image}?offset=${offset}`])).stdout);
      fs.features = d.features;
      fs.inodeSize = d.inodeSize;
      fs.blockSize = d.blockSize ?? fs.blockSize;
    }
    filesystems.push(fs);
  }
  return { sizeBytes, ...base, filesystems };
}
