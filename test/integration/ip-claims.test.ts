/**
 * Address claims under concurrency, against real SQLite: two store handles on one database file
 * (as two controller replicas would have) claim and release addresses for many instances at once,
 * in random batches. Whatever the interleaving: no address is held twice, every claim's answer is
 * what the database holds for that instance, a subnet is reported full only when it is, and a
 * released address can be claimed again.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from '../helpers/fast-check.ts';
import { hostRange, parseIpv4, parseSubnet, pickAddress } from '../../src/network/index.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { tempDir } from '../helpers/tmp.ts';

const subnets = { 'n-a': '10.1.0.0/29', 'n-b': '10.2.0.0/28' } as const; // 6 and 14 host addresses, the gateway (.1) kept
type Net = keyof typeof subnets;
const subnet = (n: Net) => {
  const p = parseSubnet(subnets[n]);
  if (!p.ok) throw new Error(p.reason);
  return p.subnet;
};
const capacity = (n: Net) => hostRange(subnet(n)).last - hostRange(subnet(n)).first + 1 - 1;

type Op = { kind: 'claim'; instance: number; net: Net; via: 0 | 1 } | { kind: 'release'; instance: number; via: 0 | 1 };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('claim' as const),
      instance: fc.integer({ min: 0, max: 24 }),
      net: fc.constantFrom<Net>('n-a', 'n-b'),
      via: fc.constantFrom<0 | 1>(0, 1),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('release' as const), instance: fc.integer({ min: 0, max: 24 }), via: fc.constantFrom<0 | 1>(0, 1) }) },
);

test('concurrent claims and releases from two store handles never hand an address out twice', { timeout: 300_000 }, async () => {
  const dir = tempDir('outrig-claims-');
  try {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(op, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 8 }), async (batches) => {
        const path = join(dir.path, `claims-${run++}.sqlite`);
        const stores: Store[] = [await openStore({ kind: 'sqlite', path }), await openStore({ kind: 'sqlite', path })];
        try {
          for (const batch of batches) {
            const answers = await Promise.all(
              batch.map(async (o) => {
                const claims = stores[o.via]!.claims;
                if (o.kind === 'release') return { o, released: await claims.releaseInstance(`i-${o.instance}`) };
                const reserved = new Set([parseIpv4(subnets[o.net].replace(/0\/\d+$/, '1'))!]);
                const address = await claims.claimAddress(o.net, `i-${o.instance}`, (used) => pickAddress(subnet(o.net), reserved, used));
                return { o, address };
              }),
            );
            const held = await stores[0]!.claims.addresses();
            // Unique per network (the property itself, checked on the data, not assumed from the key).
            for (const n of Object.keys(subnets) as Net[]) {
              const addrs = held.filter((c) => c.networkId === n).map((c) => c.address);
              assert.equal(new Set(addrs).size, addrs.length, `an address of ${n} is held twice`);
              const { first, last } = hostRange(subnet(n));
              for (const a of addrs) assert.ok(a >= first + 1 && a <= last, `${n}: ${a} is the gateway or outside the subnet`);
            }
            for (const a of answers) {
              if (!('address' in a) || a.o.kind !== 'claim') continue;
              const o = a.o;
              const mine = held.filter((c) => c.networkId === o.net && c.instanceId === `i-${o.instance}`).map((c) => c.address);
              if (a.address === undefined) {
                // "Full" only when, at some point in the batch, it was: it is full now or someone released meanwhile.
                const releasedInBatch = batch.some((b) => b.kind === 'release');
                if (!releasedInBatch) assert.equal(held.filter((c) => c.networkId === o.net).length, capacity(o.net), `${o.net} said full while it was not`);
              } else {
                const releasedLater = batch.some((b) => b.kind === 'release' && b.instance === o.instance);
                if (!releasedLater) assert.ok(mine.includes(a.address), `claim answered ${a.address} for i-${o.instance}, which does not hold it`);
              }
            }
          }
          // Everything released: every address can be claimed again, lowest first.
          for (let i = 0; i <= 24; i++) await stores[1]!.claims.releaseInstance(`i-${i}`);
          assert.deepEqual(await stores[0]!.claims.addresses(), []);
          const again = await stores[0]!.claims.claimAddress('n-a', 'i-x', (used) => pickAddress(subnet('n-a'), new Set([parseIpv4('10.1.0.1')!]), used));
          assert.equal(again, parseIpv4('10.1.0.2'));
        } finally {
          for (const s of stores) await s.close();
        }
      }),
      { numRuns: 40 },
    );
  } finally {
    dir.remove();
  }
});
