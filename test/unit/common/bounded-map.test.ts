import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { approxBytes, BoundedExpiringMap } from '../../../src/common/bounded-map.ts';

test('entries expire after their lifetime, and renewing one restarts it', () => {
  const m = new BoundedExpiringMap<string>({ ttlMs: 1000, maxBytes: 1 << 20 });
  m.set('a', 'x', 0);
  m.set('b', 'y', 500);
  assert.equal(m.get('a', 999), 'x');
  assert.equal(m.get('a', 1000), undefined);
  m.set('b', 'y', 1200);
  assert.equal(m.get('b', 2000), 'y', 'renewed at 1200: lives until 2200');
  assert.equal(m.get('b', 2200), undefined);
  assert.equal(m.size, 0);
  assert.equal(m.bytes, 0);
});

test('when full, the oldest entries make room for the new one; one larger than the whole budget is not kept', () => {
  const one = approxBytes('k0') + approxBytes('v'.repeat(100)) + 48;
  const m = new BoundedExpiringMap<string>({ ttlMs: 60_000, maxBytes: one * 3 });
  for (let i = 0; i < 5; i++) assert.equal(m.set(`k${i}`, 'v'.repeat(100), i), true);
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => m.get(`k${i}`, 10) !== undefined),
    [false, false, true, true, true],
  );
  assert.equal(m.set('huge', 'v'.repeat(one * 2), 11), false);
  assert.equal(m.get('huge', 11), undefined);
  assert.equal(m.get('k4', 11), 'v'.repeat(100), 'a refused entry evicts nothing');
});

test('the estimate grows with every character, key and value a stranger sends', () => {
  assert.ok(approxBytes({ a: 'b' }) > approxBytes({}));
  assert.ok(approxBytes('é'.repeat(1000)) >= 2000);
  assert.ok(approxBytes({ labels: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, ''])) }) > 500 * 48);
});

test('whatever is added, in whatever order and size, the estimate never exceeds the budget and matches what is held', () => {
  const op = fc.record({ key: fc.integer({ min: 0, max: 30 }), size: fc.integer({ min: 0, max: 3000 }), advance: fc.integer({ min: 0, max: 400 }) });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), fc.integer({ min: 200, max: 20_000 }), (ops, maxBytes) => {
      const m = new BoundedExpiringMap<string>({ ttlMs: 1000, maxBytes });
      const held = new Map<string, string>();
      let now = 0;
      for (const o of ops) {
        now += o.advance;
        const key = `k${o.key}`;
        const value = 'x'.repeat(o.size);
        held.delete(key);
        if (m.set(key, value, now)) held.set(key, value);
        assert.ok(m.bytes <= maxBytes);
        assert.equal(m.get(key, now), held.get(key));
      }
      // Everything the map still answers for is what was last set, and its bytes add up.
      let sum = 0;
      for (const [k, v] of held) {
        const got = m.get(k, now);
        if (got !== undefined) {
          assert.equal(got, v);
          sum += approxBytes(k) + approxBytes(v) + 48;
        }
      }
      assert.equal(m.bytes, sum);
    }),
    { numRuns: 300 },
  );
});
