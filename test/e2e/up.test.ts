/**
 * `outrig up --demo` (what `npm start` runs): the all-in-one cloud boots a demo VM that answers
 * HTTP, and Ctrl-C (SIGINT) stops the VM cleanly before the process exits. Its data, logs and host
 * identity are the owner's only.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { freePort } from '../../src/agent/ports.ts';
import { findProcessesWith } from '../../src/hypervisor/process.ts';
import type { Instance } from '../../src/model/instance.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { runCli, spawnOutrig } from '../helpers/processes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

const dir = tempDir('outrig-up-');
after(async () => {
  await killProcessesUnder(dir.path);
  dir.remove();
});

async function upOnce(port: number, env: Record<string, string>): Promise<Instance> {
  const up = spawnOutrig(['up', '--demo', '--listen', `127.0.0.1:${port}`], env);
  try {
    await waitUntil(
      'up to report it is up',
      () => {
        if (up.proc.exitCode !== null) throw new Error(`up exited: ${up.output()}`);
        return up.output().includes('Outrig is up');
      },
      180_000,
    );
    assert.match(up.output(), /demo guest answers on http:\/\/127\.0\.0\.1:\d+\/ : outrig test guest demo/);
    assert.match(up.output(), new RegExp(`API: https://127\\.0\\.0\\.1:${port}`));
    const r = await runCli(['instance', 'show', 'demo', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const demo = JSON.parse(r.stdout) as Instance;
    assert.equal(demo.status.phase, 'running');
    assert.equal((await findProcessesWith(demo.id)).length, 1);

    up.proc.kill('SIGINT');
    assert.equal(await up.exited, 0, up.output());
    assert.match(up.output(), /stopping 1 instance\(s\): demo/);
    assert.deepEqual(await findProcessesWith(demo.id), [], 'the demo VM was stopped on Ctrl-C');
    assert.deepEqual(await findProcessesWith(`${dir.path}/agent/diskd`), [], 'and its storage daemon');
    return demo;
  } finally {
    if (up.proc.exitCode === null) up.proc.kill('SIGKILL');
  }
}

test('up --demo boots a demo VM, and Ctrl-C stops it; a second up brings the same demo back', async () => {
  const port = await freePort('127.0.0.1');
  const env = { OUTRIG_DATA: dir.path, OUTRIG_URL: `https://127.0.0.1:${port}` };
  const first = await upOnce(port, env);
  const second = await upOnce(port, env);
  assert.equal(second.id, first.id, 'the existing demo instance is started again, not duplicated');
});

test('up keeps its data private: data root, logs/ and agent/ 0700, log files and host-id 0600, also over what an older version left open', async () => {
  const root = join(dir.path, 'private');
  // As an earlier `up` left it under a 022 umask.
  mkdirSync(join(root, 'logs'), { recursive: true });
  chmodSync(root, 0o755);
  chmodSync(join(root, 'logs'), 0o755);
  writeFileSync(join(root, 'logs', 'controller.log'), '', { mode: 0o644 });
  const port = await freePort('127.0.0.1');
  const umask = process.umask(0o022);
  const up = spawnOutrig(['up', '--listen', `127.0.0.1:${port}`], { OUTRIG_DATA: root, OUTRIG_URL: `https://127.0.0.1:${port}` });
  process.umask(umask);
  try {
    await waitUntil(
      'up to report it is up',
      () => {
        if (up.proc.exitCode !== null) throw new Error(`up exited: ${up.output()}`);
        return up.output().includes('Outrig is up');
      },
      180_000,
    );
    const mode = (p: string) => (statSync(join(root, p)).mode & 0o777).toString(8);
    assert.deepEqual(Object.fromEntries(['.', 'logs', 'agent', 'logs/controller.log', 'logs/agent.log', 'agent/host-id'].map((p) => [p, mode(p)])), {
      '.': '700',
      logs: '700',
      agent: '700',
      'logs/controller.log': '600',
      'logs/agent.log': '600',
      'agent/host-id': '600',
    });
    up.proc.kill('SIGINT');
    assert.equal(await up.exited, 0, up.output());
  } finally {
    if (up.proc.exitCode === null) up.proc.kill('SIGKILL');
  }
});
