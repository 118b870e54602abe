import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planBackup, type BackupPlanContext } from '../../../src/controller/backup-plan.ts';
import type { Backup, BackupResult } from '../../../src/model/backup.ts';

const now = new Date('2026-01-01T00:00:00Z');
const result: BackupResult = { snapshotId: 'snap1', bmrReady: true, files: 3, bytes: 10, addedBytes: 10, partitions: 1, filesystems: [], systemState: [], seconds: 1 };

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
const ctx = (over: Partial<BackupPlanContext> = {}): BackupPlanContext => ({ host: { exists: true, connected: true, name: 'h1' }, lastOpInFlight: true, now, ...over });

// Issue 18, finding 5: after Ctrl-C the CLI names `backup delete` for a backup still running. On
// main before this, the record went at once and the run's snapshot stayed in the repository, in
// no list and never forgotten.
test('a backup deleted while it runs waits for the run to end, then forgets its snapshot', () => {
  const b = running();
  const p = planBackup(b, ctx());
  assert.equal(p.remove, undefined);
  assert.equal(p.send, undefined);
  assert.match(p.status.message ?? '', /snapshot is forgotten once the run on host h1 ends/);
  const done = planBackup({ ...b, status: p.status }, ctx({ answer: { ok: true, result }, lastOpInFlight: false }));
  assert.deepEqual(done.send, { opId: 'b-1/forget', kind: 'backup.forget' });
  assert.equal(done.status.result?.snapshotId, 'snap1');
});

test('a backup deleted while it runs whose run then fails just goes', () => {
  const p = planBackup(running(), ctx({ answer: { ok: false, error: 'no space' }, lastOpInFlight: false }));
  assert.equal(p.remove, true);
});
