/** The runtime's rate-limited queue, driven by a fake clock: de-duplication, backoff with jitter, TerminalError, requeueAfter. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay, DEFAULT_BACKOFF } from '../../../../src/controller/runtime/backoff.ts';
import { FakeClock } from '../../../../src/controller/runtime/clock.ts';
import { RateLimitedQueue } from '../../../../src/controller/runtime/queue.ts';
import { TerminalError } from '../../../../src/controller/runtime/reconciler.ts';

const settle = () => new Promise((r) => setImmediate(r));

test('a key never runs twice at once, and adds during a run cause exactly one more run', async () => {
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const q = new RateLimitedQueue(async () => {
    running++;
    maxRunning = Math.max(maxRunning, running);
    runs++;
    if (runs === 1) await gate;
    running--;
  });
  q.add('a');
  await settle();
  q.add('a');
  q.add('a');
  q.add('a');
  release();
  await q.idle();
  await settle();
  await q.idle();
  assert.equal(maxRunning, 1);
  assert.equal(runs, 2);
  q.close();
});

test('addAndWait resolves after a run that started after the call', async () => {
  const seen: number[] = [];
  let state = 0;
  let release!: () => void;
  const q = new RateLimitedQueue(async () => {
    seen.push(state);
    if (seen.length === 1) await new Promise<void>((r) => (release = r));
  });
  q.add('k');
  await settle();
  state = 1;
  const waited = q.addAndWait('k');
  release();
  await waited;
  assert.deepEqual(seen, [0, 1], 'the awaited run saw the state as of the call');
  q.close();
});

test('a failing key is retried with exponential backoff and jitter, and a success resets it', async () => {
  const clock = new FakeClock();
  let fail = 3;
  const runs: number[] = [];
  const retries: (number | undefined)[] = [];
  const q = new RateLimitedQueue(
    async () => {
      runs.push(clock.now().getTime());
      if (fail-- > 0) throw new Error('not yet');
    },
    { clock, backoff: { baseMs: 100, maxMs: 10_000 }, random: () => 1, onError: (_k, _e, retry) => retries.push(retry) },
  );
  q.add('k');
  await q.idle();
  assert.deepEqual(retries, [100]);
  assert.equal(q.failuresOf('k'), 1);
  assert.deepEqual([...q.delayed()], [['k', 100]]);
  clock.advance(99);
  await settle();
  assert.equal(runs.length, 1, 'not retried before its delay');
  clock.advance(1);
  await q.idle();
  clock.advance(200);
  await q.idle();
  clock.advance(400);
  await q.idle();
  assert.deepEqual(retries, [100, 200, 400], 'each consecutive failure doubles the wait');
  assert.equal(runs.length, 4);
  assert.equal(q.failuresOf('k'), 0, 'the success reset the count');
  assert.equal(q.delayed().size, 0, 'and nothing more is scheduled');
  q.close();
});

test('jitter spreads the delay over half to all of the exponential value, capped', () => {
  assert.equal(
    backoffDelay(1, { baseMs: 100, maxMs: 1000 }, () => 0),
    50,
  );
  assert.equal(
    backoffDelay(1, { baseMs: 100, maxMs: 1000 }, () => 1),
    100,
  );
  assert.equal(
    backoffDelay(3, { baseMs: 100, maxMs: 1000 }, () => 0.5),
    300,
  );
  assert.equal(
    backoffDelay(50, { baseMs: 100, maxMs: 1000 }, () => 1),
    1000,
    'capped',
  );
  assert.ok(backoffDelay(100, DEFAULT_BACKOFF) <= DEFAULT_BACKOFF.maxMs);
});

test('a TerminalError is reported and not retried', async () => {
  const clock = new FakeClock();
  let runs = 0;
  const errors: [string, number | undefined][] = [];
  const q = new RateLimitedQueue(
    async () => {
      runs++;
      throw new TerminalError('the spec can never be met');
    },
    { clock, onError: (k, _e, retry) => errors.push([k, retry]) },
  );
  q.add('k');
  await q.idle();
  clock.advance(3_600_000);
  await q.idle();
  assert.equal(runs, 1);
  assert.deepEqual(errors, [['k', undefined]]);
  assert.equal(q.delayed().size, 0);
  q.close();
});

test('requeueAfter brings a key back after its delay; of two delays the sooner wins', async () => {
  const clock = new FakeClock();
  const runs: number[] = [];
  const q = new RateLimitedQueue(
    async () => {
      runs.push(clock.now().getTime());
      return runs.length < 3 ? { requeueAfter: 5000 } : undefined;
    },
    { clock },
  );
  const t0 = clock.now().getTime();
  q.add('k');
  await q.idle();
  q.addAfter('k', 60_000);
  assert.deepEqual([...q.delayed()], [['k', 5000]], 'the later delay does not replace the sooner one');
  clock.advance(5000);
  await q.idle();
  clock.advance(5000);
  await q.idle();
  assert.deepEqual(
    runs.map((t) => t - t0),
    [0, 5000, 10_000],
  );
  assert.equal(q.delayed().size, 0, 'no blanket timer once the reconciler asks for none');
  q.close();
});

test('an event runs a key at once even while it waits out a backoff', async () => {
  const clock = new FakeClock();
  let runs = 0;
  const q = new RateLimitedQueue(
    async () => {
      if (++runs === 1) throw new Error('transient');
    },
    { clock, backoff: { baseMs: 60_000, maxMs: 60_000 }, random: () => 1 },
  );
  q.add('k');
  await q.idle();
  q.add('k');
  await q.idle();
  assert.equal(runs, 2);
  assert.equal(q.failuresOf('k'), 0);
  q.close();
});
