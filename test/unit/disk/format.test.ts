import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import {
  decodeMapTable,
  decodeOps,
  decodeRecordHeader,
  decodeSnapshotTable,
  decodeSuperblock,
  encodeMapTable,
  encodeOps,
  encodeRecord,
  encodeSnapshotTable,
  encodeSuperblock,
  FormatError,
  journalSeed,
  newSuperblock,
  Op,
  RECORD_TXN,
  type LogicalOp,
} from '../../../src/disk/format.ts';

test('a superblock round-trips, and any flipped byte is caught by its checksum', () => {
  const sb = newSuperblock({
    virtualSize: 1 << 30,
    blockSize: 65536,
    journalSize: 4 << 20,
    backing: { path: '../base.odsk', uuid: '12345678-1234-4234-8234-123456789abc', snapshotId: 3 },
  });
  const bytes = encodeSuperblock(sb);
  assert.deepEqual(decodeSuperblock(bytes, 0), sb);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4095 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const bad = Buffer.from(bytes);
      bad[at]! ^= x;
      assert.throws(() => decodeSuperblock(bad, 4096), FormatError);
    }),
  );
});

test('geometry that later code trusts is validated', () => {
  assert.throws(() => newSuperblock({ virtualSize: 1 << 30, blockSize: 3000, journalSize: 4 << 20 }), /invalid block size/);
  assert.throws(() => newSuperblock({ virtualSize: 1 << 30, blockSize: 65536, journalSize: 1000 }), /invalid journal size/);
  assert.throws(() => newSuperblock({ virtualSize: 2 ** 50, blockSize: 4096, journalSize: 4 << 20 }), /too large/);
});

test('logical operations round-trip', () => {
  const arbOp: fc.Arbitrary<LogicalOp> = fc.oneof(
    fc.record({ op: fc.constant(Op.Map), v: fc.nat(0xfffffffe), p: fc.nat(0xffffffff) }),
    fc.record({ op: fc.constant(Op.Unmap), v: fc.nat(0xfffffffe) }),
    fc.record({ op: fc.constant(Op.Alloc), p: fc.nat(0xfffffffe) }),
    fc.record({ op: fc.constant(Op.Free), p: fc.nat(0xfffffffe) }),
  ) as fc.Arbitrary<LogicalOp>;
  fc.assert(
    fc.property(
      fc.array(
        arbOp.map((o) => ({ ...o })),
        { maxLength: 200 },
      ),
      (ops) => assert.deepEqual(decodeOps(encodeOps(ops)), ops),
    ),
  );
  assert.throws(() => decodeOps(Buffer.from([1, 0, 0])), /truncated operation/);
  assert.throws(() => decodeOps(Buffer.from([9, 0, 0, 0, 0])), /unknown journal operation 9/);
});

test('record headers are bound to their disk: another seed does not validate', () => {
  const rec = encodeRecord(RECORD_TXN, 42, Buffer.from('payload'), journalSeed('11111111-1111-4111-8111-111111111111'));
  assert.equal(decodeRecordHeader(rec, journalSeed('11111111-1111-4111-8111-111111111111'))?.lsn, 42);
  assert.equal(decodeRecordHeader(rec, journalSeed('22222222-2222-4222-8222-222222222222')), null);
  assert.equal(rec.length % 512, 0);
});

test('map and snapshot tables round-trip and reject truncation', () => {
  const t = { v: Uint32Array.from([1, 5, 9]), p: Uint32Array.from([7, 8, 0xffffffff]), count: 3 };
  assert.deepEqual(decodeMapTable(encodeMapTable(t), 0), t);
  assert.throws(() => decodeMapTable(encodeMapTable(t).subarray(0, 20), 100), /claims 3 entries/);
  const snaps = [{ id: 1, name: 'base', createdAt: 1700000000000, blocks: 12, map: { start: 3, blocks: 1, bytes: 104, crc: 77 } }];
  assert.deepEqual(decodeSnapshotTable(encodeSnapshotTable(snaps), 0), snaps);
});
