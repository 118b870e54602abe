/**
 * A daemon with the crash guard outlives a rejection nobody handled and a stray exception (Node's
 * default ends the process: with `outrig up`, the API and the agent together). Run in a child
 * process, since the test runner itself watches for both.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';

const GUARD = new URL('../../../src/common/crash-guard.ts', import.meta.url).href;

function runGuarded(body: string, options = '{}'): Promise<{ code: number | null; out: string }> {
  const script = `import pino from 'pino';
import { guardProcess } from ${JSON.stringify(GUARD)};
guardProcess(pino({}, process.stdout), ${options});
${body}
// Two turns of the event loop: whatever Node does with an unhandled rejection has happened by then.
setImmediate(() => setImmediate(() => console.log('STILL-SERVING')));`;
  const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  return new Promise((resolve) => p.once('close', (code) => resolve({ code, out })));
}

test('an unhandled rejection is logged and the process keeps serving', async () => {
  const r = await runGuarded(`Promise.reject(new Error('forgotten wait'));`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /unhandled promise rejection; still serving/);
  assert.match(r.out, /forgotten wait/);
  assert.match(r.out, /STILL-SERVING/);
});

test('an uncaught exception is logged and the process keeps serving', async () => {
  const r = await runGuarded(`setImmediate(() => { throw new Error('stray throw'); });`);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /uncaught exception; still serving/);
  assert.match(r.out, /STILL-SERVING/);
});

test('with exitOnException (diskd) an uncaught exception ends the process with code 70, a rejection does not', async () => {
  const thrown = await runGuarded(`setImmediate(() => { throw new Error('engine state unknown'); });`, '{ exitOnException: true }');
  assert.equal(thrown.code, 70, thrown.out);
  assert.match(thrown.out, /uncaught exception; exiting/);
  const rejected = await runGuarded(`Promise.reject(new Error('forgotten wait'));`, '{ exitOnException: true }');
  assert.equal(rejected.code, 0, rejected.out);
});
