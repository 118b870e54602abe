import assert from 'node:assert/strict';
import { test } from 'node:test';
import { unbackedTiers } from '../../../src/controller/memory/pools.ts';
import { DEFAULT_ALLOCATION_POLICY } from '../../../src/controller/placement/scheduler.ts';
import type { Host } from '../../../src/model/host.ts';
import type { MemoryPoolSpec } from '../../../src/model/memory.ts';

const host = (name: string, totalMiB?: number) =>
  ({ id: `h-${name}`, name, status: { inventory: totalMiB === undefined ? undefined : { memory: { totalMiB }, cpu: { count: 2 } } } }) as unknown as Host;
const pool = (tiers: MemoryPoolSpec['tiers']) => ({ name: 'default', spec: { tiers, maxOvercommit: 1 } });
const GiB = 1024;

test("the README's tiers on a 23 GiB host: local cap and pooled size beyond it are named; sized tiers pass", () => {
  const hosts = [host('vm', 23 * GiB + 512)];
  assert.deepEqual(
    unbackedTiers(
      pool([
        { name: 'local', kind: 'local', capacityMiB: 64 * GiB },
        { name: 'cxl', kind: 'pooled', capacityMiB: 256 * GiB },
      ]),
      hosts,
      DEFAULT_ALLOCATION_POLICY,
    ),
    [
      'tier local gives up to 64 GiB of each host, more than any host of pool default has (the most: 23 GiB for guests, on vm)',
      'tier cxl is 256 GiB of pooled memory, more than the 1 host(s) of pool default have together (23 GiB for guests)',
    ],
  );
  assert.deepEqual(
    unbackedTiers(
      pool([
        { name: 'local', kind: 'local' },
        { name: 'cxl', kind: 'pooled', capacityMiB: 2 * GiB },
      ]),
      hosts,
      DEFAULT_ALLOCATION_POLICY,
    ),
    [],
  );
  assert.deepEqual(
    unbackedTiers(pool([{ name: 'local', kind: 'local', capacityMiB: 23 * GiB }]), hosts, DEFAULT_ALLOCATION_POLICY),
    [],
    'exactly what a host has',
  );
});

test('pooled memory counts every host of the pool; a pool without inventories is not judged', () => {
  const two = [host('a', 16 * GiB + 512), host('b', 16 * GiB + 512)];
  assert.deepEqual(unbackedTiers(pool([{ name: 'cxl', kind: 'pooled', capacityMiB: 30 * GiB }]), two, DEFAULT_ALLOCATION_POLICY), []);
  assert.equal(unbackedTiers(pool([{ name: 'cxl', kind: 'pooled', capacityMiB: 33 * GiB }]), two, DEFAULT_ALLOCATION_POLICY).length, 1);
  assert.deepEqual(unbackedTiers(pool([{ name: 'local', kind: 'local', capacityMiB: 64 * GiB }]), [host('new')], DEFAULT_ALLOCATION_POLICY), []);
  assert.deepEqual(unbackedTiers(pool([{ name: 'local', kind: 'local', capacityMiB: 64 * GiB }]), [], DEFAULT_ALLOCATION_POLICY), []);
});
