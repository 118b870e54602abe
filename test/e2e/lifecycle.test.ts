/**
 * Acceptance: controller and agent as separate processes; an instance created through the CLI
 * boots, prints its ready marker, serves HTTP through the forwarded port, stops, and on delete
 * leaves no QEMU process and no file behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findProcessesWith } from '../../src/hypervisor/process.ts';
import type { Instance } from '../../src/model/instance.ts';
import { OUTRIG_BIN, runCli } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';
import { Cluster } from './cluster.ts';

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).map((d) => join(d.parentPath, d.name));
}

describe('instance lifecycle through the CLI', () => {
  const c = new Cluster();
  before(() => c.up());
  after(() => c.stop());

  let inst: Instance;

  test('host list shows the agent\'s host, ready, with probed inventory', async () => {
    const hosts = await c.json<{ name: string; status: { phase: string; inventory: { kvm: { reason: string }; cpu: { count: number } } } }[]>('host', 'list');
    assert.equal(hosts.length, 1);
    assert.equal(hosts[0]!.name, 'e2e-host');
    assert.equal(hosts[0]!.status.phase, 'ready');
    assert.ok(hosts[0]!.status.inventory.cpu.count >= 1);
    assert.ok(hosts[0]!.status.inventory.kvm.reason.length > 0);
  });

  test('create waits until the instance runs', async () => {
    const r = await c.cli('instance', 'create', 'web1', '--image', 'test', '--vcpus', '1', '--memory', '256');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /instance web1: running on e2e-host/);
    inst = await c.json<Instance>('instance', 'show', 'web1');
    assert.equal(inst.status.phase, 'running');
    assert.equal(inst.status.network.forwards.length, 1);
  });

  test('the console follows the guest to its ready marker', async () => {
    const follow = spawn(process.execPath, [OUTRIG_BIN, 'instance', 'console', 'web1', '--follow'], { env: { ...process.env, ...c.env } });
    let out = '';
    follow.stdout.on('data', (d) => (out += d));
    try {
      await waitUntil('ready marker on the console', () => out.includes('OUTRIG-GUEST-READY name=web1'), 90_000);
    } finally {
      follow.kill('SIGINT');
    }
    const shown = await waitUntil('GuestReady condition', async () => {
      const i = await c.json<Instance>('instance', 'show', 'web1');
      return i.status.conditions.find((x) => x.type === 'GuestReady')?.status === 'True' ? i : undefined;
    });
    assert.ok(shown.status.readyAt);
  });

  test("the guest's HTTP endpoint answers through the forwarded port", async () => {
    const f = inst.status.network.forwards[0]!;
    assert.equal(f.guestPort, 80);
    assert.equal(f.hostAddress, '127.0.0.1');
    const body = await (await fetch(`http://${f.hostAddress}:${f.hostPort}/`)).text();
    assert.equal(body.trim(), 'outrig test guest web1');
  });

  test('restart boots the guest again (a new boot, the same ports)', async () => {
    const r = await c.cli('instance', 'restart', 'web1');
    assert.equal(r.code, 0, r.stderr);
    const after = await c.json<Instance>('instance', 'show', 'web1');
    assert.equal(after.status.phase, 'running');
    assert.notEqual(after.status.bootedAt, inst.status.bootedAt);
    assert.deepEqual(after.status.network.forwards, inst.status.network.forwards);
    await waitUntil('second ready marker', () => c.serialLog(inst.id).split('OUTRIG-GUEST-READY name=web1').length === 3, 90_000);
    assert.equal((await findProcessesWith(inst.id)).length, 1);
  });

  test('stop shuts the guest down through ACPI and QEMU exits', async () => {
    assert.equal((await findProcessesWith(inst.id)).length, 1);
    const r = await c.cli('instance', 'stop', 'web1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /instance web1: stopped/);
    assert.deepEqual(await findProcessesWith(inst.id), []);
    assert.match(c.serialLog(inst.id), /power button pressed, powering off/);
  });

  test('delete leaves no QEMU process and no file of the VM', async () => {
    const vmDir = join(c.agentDir, 'vms', inst.id);
    assert.ok(existsSync(vmDir));
    const r = await c.cli('instance', 'delete', 'web1');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await findProcessesWith(inst.id), []);
    assert.equal(existsSync(vmDir), false);
    assert.deepEqual(filesUnder(c.dir.path).filter((p) => p.includes(inst.id)), []);
    const show = await c.cli('instance', 'show', 'web1');
    assert.equal(show.code, 1);
    assert.match(show.stderr, /Instance 'web1' not found/);
    assert.deepEqual(await c.json<unknown[]>('instance', 'list'), []);
  });

  test('CLI errors are clear and exit non-zero', async () => {
    const bad = await c.cli('instance', 'create', 'x1', '--image', 'nosuch');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /image 'nosuch' does not exist/);
    const usage = await c.cli('instance', 'create', 'x1', '--image', 'test', '--vcpus', 'two');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--vcpus must be a whole number/);
    const away = await runCli(['host', 'list'], { ...c.env, OUTRIG_URL: 'http://127.0.0.1:1' });
    assert.equal(away.code, 1);
    assert.match(away.stderr, /cannot reach the Outrig API at http:\/\/127\.0\.0\.1:1/);
  });
});
