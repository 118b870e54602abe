/**
 * An agent whose enrollment fails keeps trying instead of exiting: here its controller is down
 * when it starts (as when a rogue answered discovery and pointed it at nothing), and it joins once
 * the controller is back on the same address.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { startAgent, type RunningAgent } from '../../src/agent/index.ts';
import { createLogger } from '../../src/common/log.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

const dir = tempDir();
let ctl: RunningController | undefined;
let agent: RunningAgent | undefined;
after(async () => {
  await agent?.close();
  await ctl?.close();
  await killProcessesUnder(dir.path);
  dir.remove();
});

test('an agent that cannot enroll retries with backoff, logging each failure, and joins when the controller answers', async () => {
  const start = (port: number) =>
    startController({
      dataDir: join(dir.path, 'controller'),
      host: '127.0.0.1',
      port,
      log: createLogger('test', { file: join(dir.path, 'controller.log') }),
      heartbeatMs: 500,
    });
  const first = await start(0);
  const url = first.url;
  const ca = first.trust.ca.certPem;
  const { token } = await first.trust.addRule('retry', { kind: 'token' });
  await first.close();

  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  let outcome: 'joined' | Error | undefined;
  const joining = startAgent({
    dataDir: join(dir.path, 'agent'),
    name: 'patient',
    join: { kind: 'direct', controllerUrl: url, caPem: ca },
    bootstrapToken: token,
    enrollRetryMaxMs: 2000,
    log,
  }).then(
    (a) => ((agent = a), (outcome = 'joined')),
    (e: Error) => (outcome = e),
  );
  const failures = () => lines.filter((l) => l.includes('enrollment failed')).map((l) => JSON.parse(l) as { attempt: number; retryInMs: number });
  await waitUntil(
    'two failed attempts to be logged',
    () => {
      if (outcome instanceof Error) throw new Error(`the agent gave up: ${outcome.message}`);
      return failures().length >= 2;
    },
    30_000,
    50,
  );
  assert.deepEqual(
    failures()
      .slice(0, 2)
      .map((f) => [f.attempt, f.retryInMs]),
    [
      [1, 1000],
      [2, 2000],
    ],
  );
  assert.equal(outcome, undefined, 'still trying');

  ctl = await start(Number(new URL(url).port));
  await joining;
  assert.equal(outcome, 'joined');
  assert.equal(agent!.controllerUrl, url);
  const h = await waitUntil('the host to be ready', async () => {
    const x = await ctl!.store.hosts.get(agent!.hostId);
    return x?.status.phase === 'ready' ? x : undefined;
  });
  assert.equal(h.status.trust?.approvedBy, 'rule retry');
});
