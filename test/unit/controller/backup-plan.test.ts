import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planBackup, type BackupPlanContext } from '../../../src/controller/backups/plan.ts';
import type { Backup, BackupResult } from '../../../src/model/backup.ts';

const now = new Date('2026-01-01T00:00:00Z');
const result: BackupResult = {
  snapshotId: 'snap1',
  bmrReady: true,
  files: 3,
  bytes: 10,
  addedBytes: 10,
  partitions: 1,
  filesystems: [],
  systemState: [],
  seconds: 1,
};

const running = (): Backup => ({
  id: 'b-1',
  name: 'vm3-root-1',
  labels: {},
  annotations: {},
  spec: { volume: 'v-1', repository: '/repo', tags: [] },
  status: { phase: 'deleting', conditions: [], hostId: 'h-1', lastOp: { opId: 'b-1/create', kind: 'backup.create', state: 'sent', at: now.toISOString() } },
  createdAt: now.toISOString(),
  updatedAt: now.toISOString(),
  generation: 1,
});
const ctx = (over: Partial<BackupPlanContext> = {}): BackupPlanContext => ({
  host: { exists: true, connected: true, name: 'h1' },
  lastOpInFlight: true,
  now,
  ...over,
});

// Issue 18, finding 5: after Ctrl-C the CLI names `backup delete` for a backup still running. On
// main before this, the record went at once and the run's snapshot stayed in the repository, in
// no list and never forgotten.
test('a backup deleted while it runs has the run stopped, and if it completed all the same, forgets its snapshot', () => {
  const b = running();
  const p = planBackup(b, ctx());
  assert.equal(p.remove, undefined);
  assert.equal(p.send, undefined);
  assert.deepEqual(p.cancel, { opId: 'b-1/cancel', target: 'b-1/create' });
  assert.match(p.status.message ?? '', /the run on host h1 is stopped/);
  assert.equal(planBackup({ ...b, status: p.status }, ctx()).cancel, undefined, 'told once');
  const done = planBackup({ ...b, status: p.status }, ctx({ answer: { ok: true, result }, lastOpInFlight: false }));
  assert.deepEqual(done.send, { opId: 'b-1/forget', kind: 'backup.forget' });
  assert.equal(done.status.result?.snapshotId, 'snap1');
});

test('a backup deleted while it runs whose run then fails just goes', () => {
  const p = planBackup(running(), ctx({ answer: { ok: false, error: 'no space' }, lastOpInFlight: false }));
  assert.equal(p.remove, true);
});

const runningBackup = (): Backup => ({ ...running(), status: { ...running().status, phase: 'running', startedAt: now.toISOString() } });
const cancelAsked = (b: Backup): Backup => ({ ...b, status: { ...b.status, cancel: { requestedAt: now.toISOString() } } });

// Issue 18, finding 5: a backup through the controller can be cancelled part way.
test('cancelling a running backup tells its host once to stop the run; the run failing then ends it as cancelled', () => {
  const b = cancelAsked(runningBackup());
  const p = planBackup(b, ctx());
  assert.deepEqual(p.cancel, { opId: 'b-1/cancel', target: 'b-1/create' });
  assert.equal(p.send, undefined);
  assert.equal(p.status.phase, 'running');
  assert.ok(p.status.cancel?.sentAt);
  const again = planBackup({ ...b, status: p.status }, ctx());
  assert.equal(again.cancel, undefined, 'not told again while the run is still in flight');
  const ended = planBackup({ ...b, status: p.status }, ctx({ answer: { ok: false, error: 'cancelled on request' }, lastOpInFlight: false }));
  assert.equal(ended.status.phase, 'cancelled');
  assert.equal(ended.status.result, undefined);
  assert.ok(ended.status.completedAt);
  assert.match(ended.status.message ?? '', /cancelled on request/);
  assert.deepEqual(planBackup({ ...b, status: ended.status }, ctx()), { status: ended.status }, 'cancelled is final');
});

test('a failure without a cancel stays a failure', () => {
  const p = planBackup(runningBackup(), ctx({ answer: { ok: false, error: 'no space' }, lastOpInFlight: false }));
  assert.equal(p.status.phase, 'failed');
  assert.equal(p.cancel, undefined);
});

test('a run that completes before the cancel reaches it is kept, and says so', () => {
  const p = planBackup(cancelAsked(runningBackup()), ctx({ answer: { ok: true, result }, lastOpInFlight: false }));
  assert.equal(p.status.phase, 'completed');
  assert.equal(p.status.result?.snapshotId, 'snap1');
  assert.match(p.status.message ?? '', /completed before the cancel reached it/);
});

test('a pending backup cancelled before any run was sent ends at once, sending nothing', () => {
  const pending: Backup = { ...running(), status: { phase: 'pending', conditions: [] } };
  const p = planBackup(cancelAsked(pending), ctx({ host: { exists: true, connected: false }, lastOpInFlight: false }));
  assert.equal(p.status.phase, 'cancelled');
  assert.equal(p.send, undefined);
  assert.equal(p.cancel, undefined);
});

test('a run lost with a dropped connection while being cancelled is sent again, and the cancel after it', () => {
  const b = cancelAsked(runningBackup());
  b.status.cancel!.sentAt = now.toISOString();
  const p = planBackup(b, ctx({ lastOpInFlight: false }));
  assert.deepEqual(p.send, { opId: 'b-1/create', kind: 'backup.create' });
  assert.deepEqual(p.cancel, { opId: 'b-1/cancel', target: 'b-1/create' });
  const offline = planBackup(b, ctx({ host: { exists: true, connected: false, name: 'h1' }, lastOpInFlight: false }));
  assert.equal(offline.send, undefined);
  assert.equal(offline.cancel, undefined);
});
