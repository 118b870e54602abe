/**
 * A slow console reader must not make the controller or the agent hold a guest's output. A real
 * controller and agent in this process; a VM whose serial log holds 128 MiB (a guest that printed
 * for a long while); an API client that asks for all of it and then reads nothing. The agent must
 * stop reading the log once its credit is used, the controller must hold at most one window, the
 * process must not grow with the log, and the agent stream must still carry operations. Then the
 * client reads everything: every byte arrives, in order, and memory stays bounded throughout.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { openSync, writeSync, closeSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import type { Instance } from '../../src/model/instance.ts';
import type { Volume } from '../../src/model/volume.ts';
import { startInProcess, stoppedVm, type InProcessCluster } from '../helpers/in-process.ts';
import { waitUntil } from '../helpers/wait.ts';

const MiB = 1024 * 1024;
const LOG_BYTES = 128 * MiB;
/** What the controller may hold per console stream (its window, as docs/ARCHITECTURE.md says). */
const CONSOLE_WINDOW = 256 * 1024;
/** What the process may grow by while relaying the log: far less than the log itself. */
const RSS_BOUND = 96 * MiB;

/** Line i of the fake guest output: recognisable, so the test can check order and completeness. */
const LINE = (i: number) => `guest line ${String(i).padStart(9, '0')} ${'x'.repeat(40)}\n`;
const LINE_BYTES = LINE(0).length;

describe('console flow control', () => {
  let env: InProcessCluster;
  let inst: Instance;
  let serialLog: string;

  before(async () => {
    env = await startInProcess('console-host');
    ({ inst, serialLog } = await stoppedVm(env, 'talker'));
    const fd = openSync(serialLog, 'w');
    const block: string[] = [];
    for (let i = 0; i * LINE_BYTES < LOG_BYTES; i++) {
      block.push(LINE(i));
      if (block.length === 4096) writeSync(fd, block.splice(0).join(''));
    }
    writeSync(fd, block.join(''));
    closeSync(fd);
  });
  after(() => env?.close());

  const metric = async (re: RegExp) => Number(re.exec(await (await env.api.raw('GET', '/metrics')).text())?.[1] ?? NaN);
  const rss = () => process.memoryUsage().rss;

  test('a client that reads nothing stalls the agent, not the controller; reading on delivers every byte', async () => {
    const total = Math.ceil(LOG_BYTES / LINE_BYTES) * LINE_BYTES;
    const base = rss();
    let peak = base;
    const sample = () => (peak = Math.max(peak, rss()));
    const url = new URL(`/v1/instances/${inst.id}/console?follow=false&tail=${total}`, env.ctl.url);
    const req = request(url, { ca: env.ctl.trust.ca.certPem, headers: { authorization: `Bearer ${env.ctl.adminToken}` } });
    req.end();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    assert.equal(res.statusCode, 200);
    res.pause();

    // Either the agent waits for credit (bounded), or the process swells with the log (unbounded).
    const outcome = await waitUntil(
      'the agent to wait for the slow reader, or memory to grow with the log',
      async () => {
        if (sample() - base > RSS_BOUND) return 'grew';
        return (await metric(/^outrig_console_streams\{state="awaiting-credit"\} (\d+)$/m)) >= 1 ? 'stalled' : undefined;
      },
      60_000,
    );
    assert.equal(outcome, 'stalled', `the process grew by ${((peak - base) / MiB).toFixed(0)} MiB with a reader that reads nothing`);
    assert.ok((await metric(/^outrig_console_buffered_bytes (\d+)$/m)) <= CONSOLE_WINDOW, 'the controller holds at most one window');

    // The agent stream still carries operations while a console waits.
    await env.api.post('/v1/volumes', { name: 'while-stalled', sizeBytes: 4 * MiB });
    await waitUntil('a volume made while the console waits', async () => (await env.api.get<Volume>('/v1/volumes/while-stalled')).status.phase === 'available');

    // Now read it all, checking every line and watching memory.
    let got = 0;
    let line = 0;
    let carry = '';
    res.setEncoding('latin1');
    res.on('data', (chunk: string) => {
      got += chunk.length;
      const text = carry + chunk;
      const cut = text.lastIndexOf('\n') + 1;
      for (const l of text.slice(0, cut).split('\n').slice(0, -1)) assert.equal(l + '\n', LINE(line++), `line ${line - 1}`);
      carry = text.slice(cut);
      if (line % 4096 === 0) sample();
    });
    res.resume();
    await once(res, 'end');
    sample();
    assert.equal(got, total);
    assert.equal(carry, '');
    assert.ok(peak - base <= RSS_BOUND, `relaying ${LOG_BYTES / MiB} MiB grew the process by ${((peak - base) / MiB).toFixed(0)} MiB`);
  });
});
