import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { waterFill } from '../../../src/memory/index.ts';

test('shares in proportion to weight, within caps, passing what a capped item cannot take to the others', () => {
  assert.deepEqual(
    [
      ...waterFill(90, [
        { key: 'a', weight: 2, cap: 100 },
        { key: 'b', weight: 1, cap: 100 },
      ]),
    ],
    [
      ['a', 60],
      ['b', 30],
    ],
  );
  assert.deepEqual(
    [
      ...waterFill(90, [
        { key: 'a', weight: 2, cap: 10 },
        { key: 'b', weight: 1, cap: 100 },
      ]),
    ],
    [
      ['a', 10],
      ['b', 80],
    ],
  );
  assert.deepEqual(
    [
      ...waterFill(500, [
        { key: 'a', weight: 1, cap: 10 },
        { key: 'b', weight: 1, cap: 20 },
      ]),
    ],
    [
      ['a', 10],
      ['b', 20],
    ],
  );
  assert.deepEqual(
    [
      ...waterFill(10, [
        { key: 'a', weight: 0, cap: 10 },
        { key: 'b', weight: 1, cap: 0 },
      ]),
    ],
    [
      ['a', 0],
      ['b', 0],
    ],
  );
});

test('property: never above a cap, hands out min(amount, sum of caps) exactly, deterministic', () => {
  fc.assert(
    fc.property(fc.nat(10_000), fc.array(fc.record({ weight: fc.nat(1000), cap: fc.nat(3000) }), { maxLength: 12 }), (amount, raw) => {
      const items = raw.map((r, i) => ({ key: `k${i}`, weight: r.weight, cap: r.cap }));
      const out = waterFill(amount, items);
      const sum = [...out.values()].reduce((a, b) => a + b, 0);
      const open = items.filter((i) => i.weight > 0).reduce((a, i) => a + i.cap, 0);
      assert.equal(sum, Math.min(amount, open));
      for (const i of items) {
        assert.ok(out.get(i.key)! <= i.cap && out.get(i.key)! >= 0 && Number.isInteger(out.get(i.key)));
        if (i.weight === 0) assert.equal(out.get(i.key), 0);
      }
      assert.deepEqual(waterFill(amount, items), out);
    }),
    { numRuns: 500 },
  );
});
