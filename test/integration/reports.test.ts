/**
 * Agent reports on a real controller, the agent's stream played by the test. A report that repeats
 * the last one is taken as a heartbeat without being parsed again (hub.ts); this checks that such
 * repeats keep the host alive and change nothing, and that the first report that differs after them
 * is taken in full.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ApiClient } from '../../src/cli/client.ts';
import type { VmReport } from '../../src/model/agent-protocol.ts';
import type { Host } from '../../src/model/host.ts';
import type { Instance } from '../../src/model/instance.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import { addImage } from '../helpers/controller-fixtures.ts';
import { fakeAgent, type FakeAgent } from '../helpers/fake-agent.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('agent reports', () => {
  const dir = tempDir();
  const log = pino({ level: 'warn' }, pino.destination({ dest: join(dir.path, 'test.log'), sync: true }));
  let ctl: RunningController;
  let api: ApiClient;
  let agent: FakeAgent;

  before(async () => {
    ctl = await startController({ dataDir: join(dir.path, 'controller'), host: '127.0.0.1', port: 0, log, heartbeatMs: 300, lostAfterMs: 1500 });
    api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
    agent = await fakeAgent(ctl, 'h-reporter', log, { memoryMiB: 8192 });
  });
  after(async () => {
    agent?.close();
    await ctl?.close();
    dir.remove();
  });

  test('repeated reports are heartbeats that change nothing; the first one that differs is taken', async () => {
    await addImage(ctl.store, 'tiny');
    const inst = await api.post<Instance>('/v1/instances', { name: 'web1', image: 'tiny', vcpus: 1, memoryMiB: 256 });
    const start = await waitUntil('vm.start sent to the host', () => {
      const m = agent.received.find((x) => x.type === 'op' && x.op.kind === 'vm.start');
      return m?.type === 'op' && m.op.kind === 'vm.start' ? m.op : undefined;
    });
    agent.send({ type: 'op-result', opId: start.opId, ok: true });
    const at = new Date().toISOString();
    const vm: VmReport = {
      instanceId: inst.id,
      state: 'running',
      accel: 'tcg',
      forwards: [],
      generation: start.vm.generation,
      restartSeq: start.vm.restartSeq,
      disks: [],
      bootedAt: at,
      readyAt: at,
    };
    const report = { type: 'report' as const, vms: [vm], volumes: [] };
    agent.send(report);
    await waitUntil('running', async () => (await api.get<Instance>(`/v1/instances/${inst.id}`)).status.phase === 'running');

    // The same report, for longer than the host may stay silent: it stays ready, the instance running.
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      agent.send(report);
      await new Promise((r) => setTimeout(r, 200));
    }
    const host = await api.get<Host>('/v1/hosts/h-reporter');
    assert.equal(host.status.phase, 'ready', 'repeats are heartbeats');
    // The API shows the heartbeat as heard, not as last recorded (every few minutes).
    const stored = (await ctl.store.hosts.get('h-reporter'))!.status.agent.lastHeartbeatAt;
    assert.ok(Date.now() - Date.parse(host.status.agent.lastHeartbeatAt!) < 1000, `live heartbeat ${host.status.agent.lastHeartbeatAt}`);
    assert.ok(Date.parse(host.status.agent.lastHeartbeatAt!) > Date.parse(stored ?? '0'), 'newer than the one the store has');
    assert.equal((await api.get<Instance>(`/v1/instances/${inst.id}`)).status.phase, 'running');

    // Then the VM dies: that report differs from the last one and is taken.
    agent.send({ ...report, vms: [{ ...vm, state: 'stopped', lastExit: { at: new Date().toISOString(), reason: 'qemu-crashed' } }] });
    const failed = await waitUntil('the exit taken', async () => {
      const i = await api.get<Instance>(`/v1/instances/${inst.id}`);
      return i.status.phase === 'failed' ? i : undefined;
    });
    assert.match(failed.status.message ?? '', /qemu-crashed/);
  });
});
