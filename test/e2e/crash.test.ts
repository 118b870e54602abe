/**
 * Acceptance: SIGKILL of the agent while a VM runs leaves the VM running, and a new agent adopts
 * it with the right status; SIGKILL of the controller, then a restart, loses and duplicates nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { findProcessesWith } from '../../src/hypervisor/process.ts';
import type { Instance } from '../../src/model/instance.ts';
import { waitUntil } from '../helpers/wait.ts';
import { Cluster } from './cluster.ts';

type Listed = { id: string; name: string; spec: unknown; createdAt: string };
const brief = (items: Listed[]) =>
  items.map((i) => ({ id: i.id, name: i.name, spec: i.spec, createdAt: i.createdAt })).sort((a, b) => a.id.localeCompare(b.id));

describe('crashes', () => {
  const c = new Cluster();
  before(() => c.up());
  after(() => c.stop());

  async function httpBody(i: Instance): Promise<string> {
    const f = i.status.network.forwards[0]!;
    return (await (await fetch(`http://${f.hostAddress}:${f.hostPort}/`)).text()).trim();
  }

  test('SIGKILL of the agent: the VM keeps running and a new agent adopts it', async () => {
    const r = await c.cli('instance', 'create', 'keeper', '--image', 'test', '--wait-ready');
    assert.equal(r.code, 0, r.stderr);
    const before = await c.json<Instance>('instance', 'show', 'keeper');
    const [pid] = await findProcessesWith(before.id);
    assert.ok(pid);

    c.agent!.proc.kill('SIGKILL');
    await c.agent!.exited;
    assert.deepEqual(await findProcessesWith(before.id), [pid], 'QEMU survived its agent');
    assert.equal(await httpBody(before), 'outrig test guest keeper');
    await waitUntil('controller to notice the agent is gone', async () => {
      const i = await c.json<Instance>('instance', 'show', 'keeper');
      return i.status.conditions.find((x) => x.type === 'HostConnected')?.status === 'False';
    });
    // Heartbeats stopped (every 500 ms here): the host goes lost after five missed ones.
    await waitUntil('host lost', async () => (await c.json<{ status: { phase: string } }>('host', 'show', 'e2e-host')).status.phase === 'lost', 10_000);

    await c.startAgent();
    assert.match(c.agent!.output(), /adopted running VM/);
    const after = await waitUntil('instance reported running by the new agent', async () => {
      const i = await c.json<Instance>('instance', 'show', 'keeper');
      return i.status.phase === 'running' && i.status.conditions.find((x) => x.type === 'HostConnected')?.status === 'True' ? i : undefined;
    });
    assert.deepEqual(await findProcessesWith(before.id), [pid], 'the same QEMU, not a second one');
    assert.deepEqual(after.status.network.forwards, before.status.network.forwards);
    assert.equal(after.status.bootedAt, before.status.bootedAt);
    assert.equal(after.status.readyAt, before.status.readyAt);
    assert.equal(after.status.conditions.find((x) => x.type === 'GuestReady')?.status, 'True');
    assert.equal((await c.json<{ status: { phase: string } }>('host', 'show', 'e2e-host')).status.phase, 'ready');

    // The adopted VM is fully under control again: a stop goes through QMP and ACPI.
    const stop = await c.cli('instance', 'stop', 'keeper');
    assert.equal(stop.code, 0, stop.stderr);
    assert.deepEqual(await findProcessesWith(before.id), []);
    assert.match(c.serialLog(before.id), /power button pressed/);
  });

  test('a QEMU killed from outside shows as failed with the reason, and start brings it back', async () => {
    const before = await c.json<Instance>('instance', 'show', 'keeper');
    assert.equal(before.status.phase, 'stopped');
    assert.equal((await c.cli('instance', 'start', 'keeper')).code, 0);
    const [pid] = await findProcessesWith(before.id);
    process.kill(pid!, 'SIGKILL');
    const failed = await waitUntil('instance failed', async () => {
      const i = await c.json<Instance>('instance', 'show', 'keeper');
      return i.status.phase === 'failed' ? i : undefined;
    });
    assert.match(failed.status.message ?? '', /VM exited at .*: process-exited/);
    assert.deepEqual(await findProcessesWith(before.id), [], "not restarted behind the user's back");
    const start = await c.cli('instance', 'start', 'keeper', '--no-wait');
    assert.equal(start.code, 0, start.stderr);
    // Left starting on purpose: the next test kills the controller while this is in flight.
  });

  test('SIGKILL of the controller mid-work, then a restart: nothing lost, nothing duplicated', async () => {
    // Work in flight when the controller dies: one instance being started, one being created.
    const create = await c.cli('instance', 'create', 'inflight', '--image', 'test', '--no-wait');
    assert.equal(create.code, 0, create.stderr);
    const snapshot = {
      instances: brief(await c.json<Listed[]>('instance', 'list')),
      hosts: brief(await c.json<Listed[]>('host', 'list')),
      images: brief(await c.json<Listed[]>('image', 'list')),
      tenants: brief(await c.json<Listed[]>('tenant', 'list')),
    };
    assert.equal(snapshot.instances.length, 2);

    c.controller!.proc.kill('SIGKILL');
    await c.controller!.exited;
    await c.startController();

    const running = await waitUntil(
      'both instances running after the restart',
      async () => {
        const list = await c.json<Instance[]>('instance', 'list');
        return list.length === 2 && list.every((i) => i.status.phase === 'running') ? list : undefined;
      },
      90_000,
    );
    assert.deepEqual(
      {
        instances: brief(running as unknown as Listed[]),
        hosts: brief(await c.json<Listed[]>('host', 'list')),
        images: brief(await c.json<Listed[]>('image', 'list')),
        tenants: brief(await c.json<Listed[]>('tenant', 'list')),
      },
      snapshot,
    );
    for (const i of running) {
      assert.equal((await findProcessesWith(i.id)).length, 1, `exactly one QEMU for ${i.name}`);
      await waitUntil(`${i.name} answers HTTP`, async () => (await httpBody(i)) === `outrig test guest ${i.name}`, 60_000);
    }
  });
});
