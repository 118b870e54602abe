import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSummary } from '../../../src/cli/commands/backup-policy.ts';
import type { BackupPolicy } from '../../../src/model/backup.ts';

const policy = (lastRun: NonNullable<BackupPolicy['status']['lastRun']>, instanceLabels: Record<string, string> = { tier: 'web' }) => ({
  name: 'nightly',
  spec: { schedule: '0 2 * * *', instanceLabels, retention: { daily: 7 }, repository: '/r', paused: false },
  status: { phase: 'active' as const, conditions: [], observedGeneration: 1, expired: 0, lastRun },
});

test('backup policy run says which label matched no instance, and how to fix it (issue 18, finding 11)', () => {
  const none = runSummary(policy({ at: 'now', started: [], skipped: [] }));
  assert.match(
    none,
    /^backup policy nightly ran and started nothing: no instance has the label tier=web \(give it to instances with instance create --label tier=web, or select others with backup policy set nightly --instance-label KEY=VALUE\)$/,
  );
  assert.match(
    runSummary(policy({ at: 'now', started: [], skipped: [] }, { tier: 'web', env: 'prod' })),
    /no instance has the labels tier=web,env=prod \(.*--label tier=web --label env=prod/,
  );
  assert.match(runSummary(policy({ at: 'now', started: [], skipped: [] }, {})), /there are no instances/);
  assert.equal(
    runSummary(policy({ at: 'now', started: ['nightly-web1-x'], skipped: [{ instance: 'web2', reason: 'boots a kernel image' }] })),
    'backup policy nightly ran: started nightly-web1-x; skipped web2 (boots a kernel image)',
  );
});
