import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { ConnectionCounter } from '../../../src/api/connection-guard.ts';

test('one address gets its share and no more; everyone together gets the total; a closed connection frees its slot', () => {
  const c = new ConnectionCounter({ maxConnections: 5, maxConnectionsPerAddress: 3 });
  assert.deepEqual(
    [1, 2, 3, 4].map(() => c.admit('10.0.0.1')),
    ['ok', 'ok', 'ok', 'limit-address'],
  );
  assert.deepEqual(
    [1, 2, 3].map(() => c.admit('10.0.0.2')),
    ['ok', 'ok', 'limit-total'],
  );
  c.release('10.0.0.1');
  assert.equal(c.admit('10.0.0.3'), 'ok');
  assert.equal(c.open, 5);
  c.release('10.0.0.9');
  assert.equal(c.open, 5, 'releasing an address that holds nothing changes nothing');
});

test('whatever the order of connects and closes, a connection is admitted exactly when its address and the total have room', () => {
  const op = fc.record({ address: fc.constantFrom('a', 'b', 'c', 'd'), close: fc.boolean() });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 20 }), (ops, perAddress, total) => {
      const c = new ConnectionCounter({ maxConnections: total, maxConnectionsPerAddress: perAddress });
      const held = new Map<string, number>();
      for (const o of ops) {
        const mine = held.get(o.address) ?? 0;
        const sum = () => [...held.values()].reduce((a, b) => a + b, 0);
        if (o.close && mine > 0) {
          c.release(o.address);
          held.set(o.address, mine - 1);
        } else {
          const expected = mine >= perAddress ? 'limit-address' : sum() >= total ? 'limit-total' : 'ok';
          assert.equal(c.admit(o.address), expected);
          if (expected === 'ok') held.set(o.address, mine + 1);
        }
        assert.equal(c.open, sum());
      }
    }),
    { numRuns: 200 },
  );
});
