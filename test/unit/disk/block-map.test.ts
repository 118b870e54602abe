import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { BlockMap } from '../../../src/disk/block-map.ts';
import { Allocator } from '../../../src/disk/allocator.ts';

test('BlockMap behaves like a Map under random sets and deletes (including growth and backward shifts)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(3000), fc.nat(0xfffffffe)), { maxLength: 3000 }), (ops) => {
      const m = new BlockMap(4);
      const ref = new Map<number, number>();
      for (const [del, k, v] of ops) {
        if (del) assert.equal(m.delete(k), ref.delete(k));
        else {
          m.set(k, v);
          ref.set(k, v);
        }
      }
      assert.equal(m.size, ref.size);
      for (let k = 0; k <= 3000; k++) assert.equal(m.get(k), ref.get(k) ?? -1);
      const sorted = m.sorted();
      assert.deepEqual(
        [...sorted.v],
        [...ref.keys()].sort((a, b) => a - b),
      );
    }),
    { numRuns: 50 },
  );
});

test('the allocator reuses freed blocks before growing, and keeps counts right', () => {
  const a = new Allocator(new Uint8Array(0), 0);
  const got = [a.allocate(), a.allocate(), a.allocate()];
  assert.deepEqual(got, [0, 1, 2]);
  a.setFree(1);
  assert.equal(a.freeBlocks, 1);
  assert.equal(a.allocate(), 1);
  assert.equal(a.allocate(), 3);
  assert.equal(a.blockCount, 4);
  assert.equal(a.allocateRunAtEnd(3), 4);
  assert.equal(a.blockCount, 7);
  a.incRef(2);
  a.incRef(2);
  assert.equal(a.decRef(2), 1);
  assert.equal(a.decRef(2), 0);
  assert.equal(a.decRef(2), 0);
});
