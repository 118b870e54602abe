/**
 * A host answers only for its own operations. Two enrolled hosts on a real controller, their agent
 * streams played by the test: the controller sends host B a backup, host A (any trusted host can
 * name any operation id) answers it with a forged snapshot id and forged progress. The controller
 * must drop A's messages, log and count them, and take B's.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ApiClient } from '../../src/cli/client.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import type { Backup, BackupResult } from '../../src/model/backup.ts';
import { fakeAgent, type FakeAgent } from '../helpers/fake-agent.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('operation answers are tied to the host they were sent to', () => {
  const dir = tempDir();
  const log = pino({ level: 'warn' }, pino.destination({ dest: join(dir.path, 'test.log'), sync: true }));
  let ctl: RunningController;
  let api: ApiClient;
  let a: FakeAgent;
  let b: FakeAgent;

  const dropped = async () => {
    const text = await (await api.raw('GET', '/metrics')).text();
    return [...text.matchAll(/^outrig_agent_answers_dropped_total\{kind="([^"]+)",reason="other-host"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[2]), 0);
  };
  const backup = (ref: string) => api.get<Backup>(`/v1/backups/${ref}`);

  before(async () => {
    ctl = await startController({ dataDir: join(dir.path, 'controller'), host: '127.0.0.1', port: 0, log, heartbeatMs: 500 });
    api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
    a = await fakeAgent(ctl, 'h-host-a', log);
    b = await fakeAgent(ctl, 'h-host-b', log);
  });
  after(async () => {
    a?.close();
    b?.close();
    await ctl?.close();
    dir.remove();
  });

  test("another host's op-result and op-progress are dropped, logged and counted; the target's own count", async () => {
    const created = await api.post<Backup>('/v1/backups', { name: 'of-b', host: 'h-host-b', paths: ['/etc'] });
    const sent = await waitUntil('the backup operation sent to host B', () => {
      const m = b.received.find((x) => x.type === 'op' && x.op.kind === 'backup.files');
      return m?.type === 'op' ? m.op : undefined;
    });
    assert.ok(!a.received.some((m) => m.type === 'op' && m.op.opId === sent.opId), 'host A was not sent it');
    const forged: BackupResult = {
      snapshotId: 'forged-by-a',
      bmrReady: false,
      files: 1,
      bytes: 1,
      addedBytes: 1,
      partitions: 0,
      filesystems: [],
      systemState: [],
      seconds: 1,
    };

    a.send({ type: 'op-progress', opId: sent.opId, progress: { files: 99, bytes: 99, stage: 'forged' } });
    a.send({ type: 'op-result', opId: sent.opId, ok: true, result: forged });
    const outcome = await waitUntil('host A answer dropped (or taken)', async () =>
      (await backup(created.id)).status.phase === 'completed' ? 'taken' : (await dropped()) >= 2 ? 'dropped' : undefined,
    );
    assert.equal(outcome, 'dropped', "host A completed host B's backup");
    const still = await backup(created.id);
    assert.equal(still.status.phase, 'running');
    assert.equal(still.status.result, undefined);
    assert.notEqual(still.status.progress?.stage, 'forged');

    b.send({ type: 'op-progress', opId: sent.opId, progress: { files: 3, bytes: 30, stage: 'files' } });
    await waitUntil("host B's progress recorded", async () => (await backup(created.id)).status.progress?.stage === 'files');
    b.send({ type: 'op-result', opId: sent.opId, ok: true, result: { ...forged, snapshotId: 'made-by-b' } });
    const done = await waitUntil('backup completed by host B', async () => {
      const x = await backup(created.id);
      return x.status.phase === 'completed' ? x : undefined;
    });
    assert.equal(done.status.result?.snapshotId, 'made-by-b');
    assert.equal(await dropped(), 2);
  });

  test('an answer for an operation this controller never sent is dropped too', async () => {
    const before =
      (await (await api.raw('GET', '/metrics')).text()).match(
        /^outrig_agent_answers_dropped_total\{kind="op-result",reason="unknown-operation"\} (\d+)$/m,
      )?.[1] ?? '0';
    a.send({ type: 'op-result', opId: 'b-nothing/create', ok: true });
    await waitUntil('unknown answer counted', async () => {
      const now = (await (await api.raw('GET', '/metrics')).text()).match(
        /^outrig_agent_answers_dropped_total\{kind="op-result",reason="unknown-operation"\} (\d+)$/m,
      )?.[1];
      return Number(now ?? 0) === Number(before) + 1;
    });
  });
});
