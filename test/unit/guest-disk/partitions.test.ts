import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { readPartitionTable } from '../../../src/guest-disk/partitions.ts';
import { bufferSource, CorruptError } from '../../../src/guest-disk/source.ts';

const SECTORS = 4096;

function mbrEntry(b: Buffer, at: number, k: number, e: { status?: number; type: number; start: number; size: number }): void {
  const o = at + 446 + k * 16;
  b[o] = e.status ?? 0;
  b[o + 4] = e.type;
  b.writeUInt32LE(e.start, o + 8);
  b.writeUInt32LE(e.size, o + 12);
  b.writeUInt16LE(0xaa55, at + 510);
}

test('MBR with an extended partition: primaries, the bootable flag, and logical partitions along the EBR chain', () => {
  const d = Buffer.alloc(SECTORS * 512);
  d.writeUInt32LE(0x5eed0001, 440);
  mbrEntry(d, 0, 0, { status: 0x80, type: 0x83, start: 2048, size: 1024 });
  mbrEntry(d, 0, 1, { type: 0x05, start: 3072, size: 1024 });
  mbrEntry(d, 3072 * 512, 0, { type: 0x83, start: 1, size: 100 });
  mbrEntry(d, 3072 * 512, 1, { type: 0x05, start: 200, size: 300 });
  mbrEntry(d, 3272 * 512, 0, { type: 0x82, start: 1, size: 299 });
  const l = readPartitionTable(bufferSource(d));
  assert.deepEqual(l.table, { label: 'dos', id: '0x5eed0001', sectorSize: 512 });
  assert.deepEqual(l.partitions, [
    { index: 1, start: 2048, size: 1024, type: '83', bootable: true },
    { index: 2, start: 3072, size: 1024, type: '5' },
    { index: 5, start: 3073, size: 100, type: '83' },
    { index: 6, start: 3273, size: 299, type: '82' },
  ]);
});

test('hostile MBRs: an EBR chain that loops, a partition past the end of the disk, no signature', () => {
  const loop = Buffer.alloc(SECTORS * 512);
  mbrEntry(loop, 0, 0, { type: 0x05, start: 1000, size: 1000 });
  mbrEntry(loop, 1000 * 512, 0, { type: 0x83, start: 1, size: 10 });
  mbrEntry(loop, 1000 * 512, 1, { type: 0x05, start: 100, size: 10 });
  mbrEntry(loop, 1100 * 512, 1, { type: 0x05, start: 100, size: 10 }); // the next EBR is 1100 again: a loop
  mbrEntry(loop, 1100 * 512, 0, { type: 0x83, start: 1, size: 10 });
  assert.throws(() => readPartitionTable(bufferSource(loop)), /chain of logical partitions loops/);
  const past = Buffer.alloc(SECTORS * 512);
  mbrEntry(past, 0, 0, { type: 0x83, start: 2048, size: SECTORS });
  assert.throws(
    () => readPartitionTable(bufferSource(past)),
    (e) => e instanceof CorruptError && /partition 1 lies outside the disk/.test(e.message),
  );
  assert.throws(() => readPartitionTable(bufferSource(Buffer.alloc(SECTORS * 512))), /no partition table/);
});

/** A GPT disk: protective MBR, header at LBA 1 with its checksums, entries at LBA 2. */
function gpt(entries: { type: Buffer; uuid: Buffer; first: number; last: number; attrs?: bigint; name?: string }[], damage?: 'header' | 'array'): Buffer {
  const d = Buffer.alloc(SECTORS * 512);
  mbrEntry(d, 0, 0, { type: 0xee, start: 1, size: SECTORS - 1 });
  const array = Buffer.alloc(128 * 128);
  entries.forEach((e, k) => {
    const o = k * 128;
    e.type.copy(array, o);
    e.uuid.copy(array, o + 16);
    array.writeBigUInt64LE(BigInt(e.first), o + 32);
    array.writeBigUInt64LE(BigInt(e.last), o + 40);
    array.writeBigUInt64LE(e.attrs ?? 0n, o + 48);
    if (e.name) Buffer.from(e.name, 'utf16le').copy(array, o + 56);
  });
  array.copy(d, 2 * 512);
  const h = d.subarray(512, 1024);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(0x10000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(1n, 24);
  h.writeBigUInt64LE(BigInt(SECTORS - 1), 32);
  h.writeBigUInt64LE(34n, 40);
  h.writeBigUInt64LE(BigInt(SECTORS - 34), 48);
  Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(h, 56);
  h.writeBigUInt64LE(2n, 72);
  h.writeUInt32LE(128, 80);
  h.writeUInt32LE(128, 84);
  h.writeUInt32LE(crc32(array), 88);
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
  if (damage === 'header') h[60]! ^= 1;
  if (damage === 'array') d[2 * 512 + 40]! ^= 1;
  return d;
}

test('GPT: GUIDs in their mixed-endian spelling, names, attribute bits as libfdisk spells them, damaged checksums refused', () => {
  const linux = Buffer.from('af3dc60f838472478e793d69d8477de4', 'hex');
  const bios = Buffer.from('4861682149646f6e744e656564454649', 'hex');
  const id = Buffer.from('000f1c5a0000004080000000000000a2', 'hex');
  const l = readPartitionTable(
    bufferSource(
      gpt([
        { type: bios, uuid: id, first: 34, last: 2047, name: 'bios' },
        { type: linux, uuid: id, first: 2048, last: 4000, attrs: 4n | (1n << 48n) | (1n << 50n), name: 'root "quoted"' },
      ]),
    ),
  );
  assert.deepEqual(l.table, { label: 'gpt', id: '33221100-5544-7766-8899-AABBCCDDEEFF', sectorSize: 512, firstLba: 34, lastLba: SECTORS - 34 });
  assert.deepEqual(l.partitions[0], {
    index: 1,
    start: 34,
    size: 2014,
    type: '21686148-6449-6E6F-744E-656564454649',
    uuid: '5A1C0F00-0000-4000-8000-0000000000A2',
    name: 'bios',
  });
  assert.equal(l.partitions[1]!.type, '0FC63DAF-8483-4772-8E79-3D69D8477DE4');
  assert.equal(l.partitions[1]!.attrs, 'LegacyBIOSBootable GUID:48,50');
  assert.equal(l.partitions[1]!.name, 'root "quoted"');
  assert.throws(() => readPartitionTable(bufferSource(gpt([], 'header'))), /GPT header checksum does not match/);
  assert.throws(
    () => readPartitionTable(bufferSource(gpt([{ type: linux, uuid: id, first: 2048, last: 4000 }], 'array'))),
    /entry array checksum does not match/,
  );
  assert.throws(
    () => readPartitionTable(bufferSource(gpt([{ type: linux, uuid: id, first: 2048, last: SECTORS }]))),
    /partition 1 lies outside the usable area/,
  );
});
