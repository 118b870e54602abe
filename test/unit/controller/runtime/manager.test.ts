/** The manager's first pass and its resync, on a fake clock: every key once per period, spread over it in slices. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../../../src/common/log.ts';
import { FakeClock } from '../../../../src/controller/runtime/clock.ts';
import { Manager } from '../../../../src/controller/runtime/manager.ts';

const settle = () => new Promise((r) => setImmediate(r));

test('the first pass reconciles every key; the resync reconciles each again once per period, a slice at a time', async () => {
  const clock = new FakeClock();
  const runs = new Map<string, number>();
  const keys = Array.from({ length: 600 }, (_, i) => `i-${i}`);
  const m = new Manager({ log: createLogger('test', { level: 'silent' }), clock, resyncMs: 60_000 });
  m.register({ kind: 'instance', reconcile: async (k) => void runs.set(k, (runs.get(k) ?? 0) + 1) }, async () => keys);
  m.register({ kind: 'host', reconcile: async (k) => void runs.set(k, (runs.get(k) ?? 0) + 1) }, async () => ['h-1']);
  await m.start();
  await m.idle();
  assert.equal(runs.size, 601);
  assert.ok([...runs.values()].every((n) => n === 1));

  // One slice (a sixtieth of the period) later, about a sixtieth of the keys have run again, not all of them.
  const total = () => [...runs.values()].reduce((a, b) => a + b, 0);
  const perSlice: number[] = [];
  for (let i = 0; i < 60; i++) {
    const before = total();
    clock.advance(1000);
    await settle();
    await m.idle();
    perSlice.push(total() - before);
  }
  assert.ok(
    perSlice.every((n) => n <= Math.ceil(601 / 60)),
    `no slice runs more than its share: ${perSlice.join(',')}`,
  );
  assert.ok(
    [...runs.values()].every((n) => n === 2),
    'after one period every key has been reconciled once more',
  );
  m.stop();
});
