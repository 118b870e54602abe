/**
 * MBR (with extended and logical partitions) and GPT partition tables, read as sfdisk reports
 * them (the same table id, partition numbers, types, uuids, names and attributes), with every
 * entry checked to lie on the disk and the EBR chain checked for loops. Pure (over a Source).
 */
import { crc32 } from 'node:zlib';
import { CorruptError, type Source } from './source.ts';

interface TableLayout {
  table: { label: 'dos' | 'gpt'; id: string; sectorSize: number; firstLba?: number; lastLba?: number };
  partitions: { index: number; start: number; size: number; type: string; uuid?: string; name?: string; bootable?: boolean; attrs?: string }[];
}

const SECTOR = 512;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);
const MAX_LOGICAL = 128;

function guid(b: Buffer): string {
  const h = (x: Buffer) => x.toString('hex');
  const le = (x: Buffer) => h(Buffer.from(x).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${h(b.subarray(8, 10))}-${h(b.subarray(10, 16))}`.toUpperCase();
}

/** libfdisk's spelling of GPT attribute bits. */
function gptAttrs(a: bigint): string | undefined {
  const words: string[] = [];
  if (a & 1n) words.push('RequiredPartition');
  if (a & 2n) words.push('NoBlockIOProtocol');
  if (a & 4n) words.push('LegacyBIOSBootable');
  const bits: number[] = [];
  for (let b = 48; b < 64; b++) if ((a >> BigInt(b)) & 1n) bits.push(b);
  if (bits.length) words.push(`GUID:${bits.join(',')}`);
  return words.length ? words.join(' ') : undefined;
}

function readGpt(src: Source): TableLayout {
  const h = src.read(SECTOR, SECTOR);
  const size = h.readUInt32LE(12);
  if (size < 92 || size > SECTOR) throw new CorruptError('the GPT header has an impossible size');
  const copy = Buffer.from(h.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== h.readUInt32LE(16)) throw new CorruptError('the GPT header checksum does not match (a damaged table)');
  const sectors = Math.floor(src.size / SECTOR);
  const firstLba = Number(h.readBigUInt64LE(40));
  const lastLba = Number(h.readBigUInt64LE(48));
  const entriesLba = Number(h.readBigUInt64LE(72));
  const count = h.readUInt32LE(80);
  const entrySize = h.readUInt32LE(84);
  if (count > 1024 || entrySize < 128 || entrySize > 1024 || entrySize % 8) throw new CorruptError('the GPT header describes an impossible entry array');
  if (lastLba >= sectors || firstLba > lastLba) throw new CorruptError('the GPT usable area is outside the disk');
  const array = src.read(entriesLba * SECTOR, count * entrySize);
  if (crc32(array) !== h.readUInt32LE(88)) throw new CorruptError('the GPT entry array checksum does not match (a damaged table)');
  const partitions: TableLayout['partitions'] = [];
  for (let k = 0; k < count; k++) {
    const e = array.subarray(k * entrySize, (k + 1) * entrySize);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const first = Number(e.readBigUInt64LE(32));
    const last = Number(e.readBigUInt64LE(40));
    if (first < firstLba || last > lastLba || last < first) throw new CorruptError(`GPT partition ${k + 1} lies outside the usable area`);
    const p: TableLayout['partitions'][number] = {
      index: k + 1,
      start: first,
      size: last - first + 1,
      type: guid(e.subarray(0, 16)),
      uuid: guid(e.subarray(16, 32)),
    };
    const nameRaw = e.subarray(56, 128).toString('utf16le');
    const name = nameRaw.slice(0, nameRaw.indexOf('\0') < 0 ? nameRaw.length : nameRaw.indexOf('\0'));
    if (name) p.name = name;
    const attrs = gptAttrs(e.readBigUInt64LE(48));
    if (attrs) p.attrs = attrs;
    partitions.push(p);
  }
  return { table: { label: 'gpt', id: guid(h.subarray(56, 72)), sectorSize: SECTOR, firstLba, lastLba }, partitions };
}

export function readPartitionTable(src: Source): TableLayout {
  if (src.size < 2 * SECTOR) throw new CorruptError('the disk is too small for a partition table');
  const mbr = src.read(0, SECTOR);
  if (mbr.readUInt16LE(510) !== 0xaa55) throw new CorruptError('the disk has no partition table (no MBR signature)');
  const entry = (b: Buffer, k: number) => ({
    status: b[446 + k * 16]!,
    type: b[446 + k * 16 + 4]!,
    start: b.readUInt32LE(446 + k * 16 + 8),
    size: b.readUInt32LE(446 + k * 16 + 12),
  });
  if ([0, 1, 2, 3].some((k) => entry(mbr, k).type === 0xee)) return readGpt(src);
  const sectors = Math.floor(src.size / SECTOR);
  const partitions: TableLayout['partitions'] = [];
  const check = (start: number, size: number, what: string) => {
    if (start + size > sectors || size === 0) throw new CorruptError(`${what} lies outside the disk`);
  };
  let extended: { start: number; size: number } | undefined;
  for (let k = 0; k < 4; k++) {
    const e = entry(mbr, k);
    if (e.type === 0) continue;
    check(e.start, e.size, `partition ${k + 1}`);
    const p: TableLayout['partitions'][number] = { index: k + 1, start: e.start, size: e.size, type: e.type.toString(16) };
    if (e.status === 0x80) p.bootable = true;
    partitions.push(p);
    if (EXTENDED.has(e.type)) extended ??= { start: e.start, size: e.size };
  }
  if (extended) {
    const seen = new Set<number>();
    let ebr = extended.start;
    for (let index = 5; ebr; index++) {
      if (seen.has(ebr) || seen.size >= MAX_LOGICAL) throw new CorruptError('the chain of logical partitions loops');
      seen.add(ebr);
      const b = src.read(ebr * SECTOR, SECTOR);
      if (b.readUInt16LE(510) !== 0xaa55) throw new CorruptError(`logical partition ${index}'s boot record has no signature`);
      const l = entry(b, 0);
      const next = entry(b, 1);
      if (l.type !== 0) {
        check(ebr + l.start, l.size, `partition ${index}`);
        if (ebr + l.start + l.size > extended.start + extended.size) throw new CorruptError(`partition ${index} lies outside its extended partition`);
        const p: TableLayout['partitions'][number] = { index, start: ebr + l.start, size: l.size, type: l.type.toString(16) };
        if (l.status === 0x80) p.bootable = true;
        partitions.push(p);
      }
      ebr = next.type !== 0 && next.start ? extended.start + next.start : 0;
    }
  }
  return { table: { label: 'dos', id: `0x${mbr.readUInt32LE(440).toString(16).padStart(8, '0')}`, sectorSize: SECTOR }, partitions };
}
