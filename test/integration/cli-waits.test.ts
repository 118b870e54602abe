/**
 * Issue 18, finding 5, played with the real `outrig` CLI as a child process against a controller
 * whose only host has no room: `instance create big4` is refused at once, saying why and leaving
 * nothing behind; with --wait-for-room it waits pending, and Ctrl-C (SIGINT) stops the wait, not
 * the work: the CLI says what keeps going on the controller and how to follow or cancel it, and
 * exits 130. On main before the fix the create waited (up to --timeout) and Ctrl-C exited silently.
 * Finding 6: a restart just after a start waited 31 s saying only "starting"; now the wait says the
 * guest ignored the power button and when it is forced off, and restart --force ends it at once.
 * That part boots real (TCG) guests: run this file under flock /work/e2e.lock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Instance } from '../../src/model/instance.ts';
import { startInProcess, type InProcessCluster } from '../helpers/in-process.ts';
import { spawnOutrig } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('CLI waits: no room now, and Ctrl-C while waiting', () => {
  let env: InProcessCluster;
  let cliEnv: Record<string, string>;
  const names = async () => (await env.api.get<{ items: Instance[] }>('/v1/instances')).items.map((i) => `${i.name}:${i.status.phase}`).sort();

  before(async () => {
    env = await startInProcess('waits-host');
    cliEnv = { OUTRIG_DATA: env.dir.path, OUTRIG_URL: env.ctl.url };
    // Fills the host's memory but 128 MiB (placed even though it is not started).
    const cap = await env.api.get<{ status: { allocatable: { memoryMiB: number } } }>('/v1/hosts/waits-host');
    await env.api.post('/v1/instances', { name: 'filler', image: 'test', vcpus: 1, memoryMiB: cap.status.allocatable.memoryMiB - 128, start: false });
    await waitUntil('filler placed', async () => (await env.api.get<Instance>('/v1/instances/filler')).status.hostId);
  });
  after(() => env?.close());

  test('a create that cannot be placed now fails at once, says why, and leaves no pending record', async () => {
    const before = await names();
    const t0 = Date.now();
    const cli = spawnOutrig(['instance', 'create', 'big4', '--image', 'test', '--memory', '1G', '--timeout', '20'], cliEnv);
    const code = await cli.exited;
    assert.equal(code, 1, cli.output());
    assert.ok(Date.now() - t0 < 15_000, 'refused at once, not after a wait');
    assert.match(
      cli.output(),
      /no host has room for instance big4 now: 0\/1 hosts fit: 1 not enough free memory \(needs 1024 MiB.*most free memory on a host: 128 MiB \(waits-host\).*--wait-for-room/,
    );
    assert.deepEqual(await names(), before);
  });

  test('with --wait-for-room it waits pending; Ctrl-C says what keeps going and how to follow or cancel it, and exits 130', async () => {
    const cli = spawnOutrig(['instance', 'create', 'big4', '--image', 'test', '--memory', '1G', '--wait-for-room'], cliEnv);
    await waitUntil('the CLI waiting on a pending instance', () => /instance big4: pending/.test(cli.output()), 20_000);
    cli.proc.kill('SIGINT');
    const code = await cli.exited;
    assert.equal(code, 130, cli.output());
    assert.match(
      cli.output(),
      /interrupted: instance big4 is still being created \(pending: 0\/1 hosts fit: 1 not enough free memory \(needs 1024 MiB.*\); follow with `outrig instance show big4`, cancel with `outrig instance delete big4`/,
    );
    // As it said: the instance is still there, pending, on the controller.
    const big4 = await env.api.get<Instance>('/v1/instances/big4');
    assert.equal(big4.status.phase, 'pending');
    // And the way it named to cancel it works.
    const del = spawnOutrig(['instance', 'delete', 'big4'], cliEnv);
    assert.equal(await del.exited, 0, del.output());
    assert.equal(await env.api.find('/v1/instances/big4'), undefined);
  });
});

describe('CLI waits: a restart the booting guest does not hear, and restart --force', () => {
  let env: InProcessCluster;
  let cliEnv: Record<string, string>;

  before(async () => {
    env = await startInProcess('restart-host');
    cliEnv = { OUTRIG_DATA: env.dir.path, OUTRIG_URL: env.ctl.url };
  });
  after(() => env?.close());

  test('the wait says the guest ignored the power button and when it is forced off; restart --force ends it at once', async () => {
    await env.api.post('/v1/instances', { name: 'r1', image: 'test', vcpus: 1, memoryMiB: 128 });
    const first = await waitUntil(
      'r1 running',
      async () => {
        const i = await env.api.get<Instance>('/v1/instances/r1');
        return i.status.phase === 'running' ? i : undefined;
      },
      60_000,
    );
    // At once, while the guest still boots: nothing in it hears the power button yet.
    const slow = spawnOutrig(['instance', 'restart', 'r1'], cliEnv);
    await waitUntil(
      'the wait to say the guest ignored the power button',
      () => /guest ignored the power button for \d+ s, forcing off in \d+ s/.test(slow.output()),
      30_000,
    );
    const stopping = await env.api.get<Instance>('/v1/instances/r1');
    assert.equal(stopping.status.phase, 'stopping', 'a restart stopping its VM says so, not "starting"');
    assert.equal(stopping.status.stopping?.method, 'acpi');
    assert.equal(
      Date.parse(stopping.status.stopping!.forceAt!) - Date.parse(stopping.status.stopping!.since),
      30_000,
      "forced off after the agent's stop timeout",
    );
    const t0 = Date.now();
    const fast = spawnOutrig(['instance', 'restart', 'r1', '--force'], cliEnv);
    assert.equal(await fast.exited, 0, fast.output());
    assert.equal(await slow.exited, 0, slow.output());
    assert.ok(Date.now() - t0 < 15_000, `restart --force took ${Date.now() - t0} ms`);
    const after = await env.api.get<Instance>('/v1/instances/r1');
    assert.equal(after.status.phase, 'running');
    assert.notEqual(after.status.bootedAt, first.status.bootedAt);
    assert.equal(after.status.stopping, undefined);
    const del = spawnOutrig(['instance', 'delete', 'r1', '--force'], cliEnv);
    assert.equal(await del.exited, 0, del.output());
  });
});
