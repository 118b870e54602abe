import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkQueue } from '../../../src/controller/work-queue.ts';

test('a key never runs twice at once, and adds during a run cause exactly one more run', async () => {
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const q = new WorkQueue(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      runs++;
      if (runs === 1) await gate;
      running--;
    },
    (_k, e) => assert.fail(String(e)),
  );
  q.add('a');
  await new Promise((r) => setImmediate(r));
  q.add('a');
  q.add('a');
  q.add('a');
  release();
  await q.idle();
  assert.equal(maxRunning, 1);
  assert.equal(runs, 2);
  q.close();
});

test('addAndWait resolves after a run that started after the call', async () => {
  const seen: number[] = [];
  let state = 0;
  const q = new WorkQueue(async () => {
    seen.push(state);
    await new Promise((r) => setTimeout(r, 5));
  }, () => undefined);
  q.add('k');
  await new Promise((r) => setImmediate(r));
  state = 1;
  await q.addAndWait('k');
  assert.equal(seen.at(-1), 1, 'the awaited run saw the state as of the call');
  q.close();
});

test('errors go to the error handler and do not stop the queue', async () => {
  const errors: string[] = [];
  let ok = 0;
  const q = new WorkQueue(async (k) => {
    if (k === 'bad') throw new Error('boom');
    ok++;
  }, (k, e) => errors.push(`${k}:${(e as Error).message}`));
  q.add('bad');
  q.add('good');
  await q.idle();
  assert.deepEqual(errors, ['bad:boom']);
  assert.equal(ok, 1);
  q.close();
});
