/**
 * Backup policies: the pure plan (schedule, selection, retention) and the reconciler against a real
 * store with a hand-driven clock, so schedules are tested without waiting for them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackupPolicyReconciler } from '../../../src/controller/backup-policies/reconciler.ts';
import { testCtx } from '../../helpers/controller-ctx.ts';
import { expired, nextRun, planRun, retentionProblem, scheduleProblem } from '../../../src/controller/backup-policies/plan.ts';
import type { Backup, BackupPolicy } from '../../../src/model/backup.ts';
import type { Instance } from '../../../src/model/instance.ts';
import { FakeClock } from '../../../src/controller/runtime/clock.ts';

const policy = (over: Partial<BackupPolicy['spec']> = {}): BackupPolicy => ({
  id: 'bp-1',
  name: 'nightly',
  labels: {},
  annotations: {},
  spec: { schedule: '0 2 * * *', instanceLabels: { tier: 'web' }, retention: { last: 2 }, repository: '/r', paused: false, ...over },
  status: { phase: 'active', conditions: [], observedGeneration: 1, expired: 0 },
  createdAt: '',
  updatedAt: '',
  generation: 1,
});

const inst = (name: string, labels: Record<string, string>, bootVolume?: string) =>
  ({ id: `i-${name}`, name, labels, spec: { bootVolume } }) as unknown as Instance;

const backup = (id: string, volume: string, phase: Backup['status']['phase'], createdAt: string, policy = 'bp-1') =>
  ({ id, name: id, spec: { volume, policy, repository: '/r', tags: [] }, status: { phase, conditions: [] }, createdAt }) as unknown as Backup;

test('schedules: cron in UTC, five fields, errors in words', () => {
  assert.equal(nextRun('0 2 * * *', new Date('2026-11-26T17:00:00Z')).toISOString(), '2026-11-27T02:00:00.000Z');
  assert.equal(nextRun('*/15 * * * *', new Date('2026-11-26T17:01:00Z')).toISOString(), '2026-11-26T17:15:00.000Z');
  assert.equal(scheduleProblem('0 2 * * *'), undefined);
  assert.match(scheduleProblem('0 2 * *') ?? '', /five fields/);
  assert.match(scheduleProblem('61 2 * * *') ?? '', /not a cron expression/);
  assert.match(scheduleProblem('every night') ?? '', /five fields/);
  assert.match(retentionProblem({}) ?? '', /at least one rule/);
  assert.match(retentionProblem({ last: 0 }) ?? '', /at least one rule/);
  assert.equal(retentionProblem({ daily: 7 }), undefined);
});

test('a run backs up the boot volume of each selected instance, and says why it skips others', () => {
  const instances = [
    inst('web1', { tier: 'web' }, 'v-1'),
    inst('web2', { tier: 'web', x: 'y' }, 'v-2'),
    inst('kern', { tier: 'web' }),
    inst('db', { tier: 'db' }, 'v-3'),
    inst('web3', { tier: 'web' }, 'v-4'),
  ];
  const running = [backup('b-1', 'v-4', 'running', '2026-01-01'), backup('b-2', 'v-1', 'running', '2026-01-01', 'bp-other')];
  const plan = planRun(policy(), instances, running);
  assert.deepEqual(
    plan.backups.map((b) => [b.instance.name, b.volumeId]),
    [
      ['web1', 'v-1'],
      ['web2', 'v-2'],
    ],
  );
  assert.deepEqual(plan.skipped, [
    { instance: 'kern', reason: 'boots a kernel image: no boot volume to back up' },
    { instance: 'web3', reason: 'the previous backup of its volume is still running' },
  ]);
  assert.equal(planRun(policy({ instanceLabels: {} }), instances, []).backups.length, 4, 'no labels: every instance with a boot volume');
});

test('retention lets go per volume of completed backups outside the rules, and of failures older than the newest success', () => {
  const list = [
    backup('a1', 'v-1', 'completed', '2026-11-20T02:00:00Z'),
    backup('a2', 'v-1', 'completed', '2026-11-21T02:00:00Z'),
    backup('a3', 'v-1', 'failed', '2026-11-21T12:00:00Z'),
    backup('a4', 'v-1', 'completed', '2026-11-22T02:00:00Z'),
    backup('a5', 'v-1', 'failed', '2026-11-23T02:00:00Z'),
    backup('a6', 'v-1', 'running', '2026-11-24T02:00:00Z'),
    backup('b1', 'v-2', 'completed', '2026-11-20T02:00:00Z'),
    backup('c1', 'v-1', 'completed', '2026-11-01T02:00:00Z', 'bp-other'),
  ];
  assert.deepEqual(
    expired(policy(), list)
      .map((b) => b.id)
      .sort(),
    ['a1', 'a3'],
  );
  assert.deepEqual(
    expired(policy({ retention: { daily: 1 } }), list)
      .map((b) => b.id)
      .sort(),
    ['a1', 'a2', 'a3'],
  );
});

test("runs that keep failing do not pile up: only the newest run's failure stays", () => {
  // A volume whose backups always fail (issue 18: a blank disk), run after run.
  const list = [
    backup('f1', 'v-1', 'failed', '2026-11-20T02:00:00Z'),
    backup('f2', 'v-1', 'failed', '2026-11-21T02:00:00Z'),
    backup('f3', 'v-1', 'failed', '2026-11-22T02:00:00Z'),
    backup('f4', 'v-1', 'running', '2026-11-23T02:00:00Z'),
    backup('g1', 'v-2', 'completed', '2026-11-20T02:00:00Z'),
    backup('g2', 'v-2', 'failed', '2026-11-21T02:00:00Z'),
    backup('g3', 'v-2', 'completed', '2026-11-22T02:00:00Z'),
  ];
  assert.deepEqual(
    expired(policy({ retention: { daily: 7 } }), list)
      .map((b) => b.id)
      .sort(),
    ['f1', 'f2', 'g2'],
  );
});

test('cancelled runs are expired like failed ones: a later run makes them history', () => {
  const list = [
    backup('c1', 'v-1', 'cancelled', '2026-11-20T02:00:00Z'),
    backup('c2', 'v-1', 'completed', '2026-11-21T02:00:00Z'),
    backup('c3', 'v-1', 'cancelled', '2026-11-22T02:00:00Z'),
  ];
  assert.deepEqual(
    expired(policy({ retention: { daily: 7 } }), list).map((b) => b.id),
    ['c1'],
  );
});

test('the reconciler runs a policy when it is due, not before, not when paused; run-now runs it at once', async () => {
  const t = await testCtx({ clock: new FakeClock(Date.parse('2026-11-26T17:00:00Z')) });
  const { store, clock } = t;
  const setNow = (iso: string) => clock.advance(Date.parse(iso) - clock.now().getTime());
  const enqueued = () => t.enqueued.filter((e) => e.kind === 'backup');
  const r = new BackupPolicyReconciler(t.ctx);
  await store.tenants.create({ name: 'default', spec: { memory: [] }, status: { phase: 'active', conditions: [] } } as never);
  await store.instances.create({ name: 'web1', labels: { tier: 'web' }, spec: { bootVolume: 'v-1' } as never, status: { phase: 'stopped' } as never });
  const p = await store.backupPolicies.create({
    name: 'nightly',
    spec: policy().spec,
    status: { phase: 'active', conditions: [], observedGeneration: 0, expired: 0 },
  });
  const names = async () => (await store.backups.list()).map((b) => b.name).sort();

  assert.deepEqual(await r.reconcile(p.id), { requeueAfter: 60_000 }, 'looked at again within a minute, not on a blanket timer');
  assert.equal((await store.backupPolicies.get(p.id))!.status.nextRunAt, '2026-11-27T02:00:00.000Z');
  assert.deepEqual(await names(), [], 'not due yet');
  setNow('2026-11-27T02:00:05Z');
  await r.reconcile(p.id);
  assert.deepEqual(await names(), ['nightly-web1-20261127-020005']);
  const after = (await store.backupPolicies.get(p.id))!;
  assert.equal(after.status.nextRunAt, '2026-11-28T02:00:00.000Z');
  assert.deepEqual(after.status.lastRun?.started, ['nightly-web1-20261127-020005']);
  assert.equal(enqueued().length, 1);
  const b = (await store.backups.list())[0]!;
  assert.equal(b.labels['outrig.io/backup-policy'], 'nightly');
  assert.equal(b.spec.policy, p.id);
  await r.reconcile(p.id);
  assert.equal((await names()).length, 1, 'one run per due time');

  await store.backups.updateStatus(b.id, (c) => ({ status: { ...c.status, phase: 'completed' } }), 'other');
  await store.backupPolicies.update(p.id, (c) => ({ spec: { ...c.spec, paused: true } }));
  setNow('2026-11-29T03:00:00Z');
  const now = clock.now();
  await r.reconcile(p.id);
  assert.equal((await names()).length, 1, 'paused: no run');
  assert.equal((await store.backupPolicies.get(p.id))!.status.phase, 'paused');
  await store.backupPolicies.updateStatus(p.id, (c) => ({ status: { ...c.status, runRequestedAt: now.toISOString() } }), 'other');
  await r.reconcile(p.id);
  assert.equal((await names()).length, 2, 'run now works while paused');
  for (const x of await store.backups.list()) await store.backups.updateStatus(x.id, (c) => ({ status: { ...c.status, phase: 'completed' } }), 'other');
  await store.backupPolicies.updateStatus(p.id, (c) => ({ status: { ...c.status, runRequestedAt: now.toISOString() } }), 'other');
  await r.reconcile(p.id);
  assert.deepEqual(
    await names(),
    ['nightly-web1-20261127-020005', 'nightly-web1-20261129-030000', 'nightly-web1-20261129-030000-2'],
    'a second run in the same second gets its own name',
  );
  assert.equal((await store.backupPolicies.get(p.id))!.status.runRequestedAt, undefined);
  await t.close();
});
