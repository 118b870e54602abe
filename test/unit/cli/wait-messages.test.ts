/**
 * What the CLI says while it waits and when it stops waiting (issue 18, findings 5 and 6): how a
 * stop is going, and what keeps running on the controller after Ctrl-C, with how to follow or cancel it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressText, stillRunning as backupStillRunning } from '../../../src/cli/commands/backup-cluster.ts';
import { stillRunning, stopText } from '../../../src/cli/commands/instance.ts';
import type { Backup } from '../../../src/model/backup.ts';
import type { Instance } from '../../../src/model/instance.ts';

const t0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0 + s * 1000).toISOString();

test('a stop under way says whether the guest ignored the power button and when it is forced off', () => {
  const acpi = { method: 'acpi' as const, since: at(0), forceAt: at(30) };
  assert.equal(stopText(acpi, t0 + 1000), 'power button pressed; forcing off in 29 s unless the guest shuts down');
  assert.equal(stopText(acpi, t0 + 5000), 'guest ignored the power button for 5 s, forcing off in 25 s');
  assert.equal(stopText(acpi, t0 + 31_000), 'guest ignored the power button, forcing it off');
  assert.equal(stopText({ method: 'force', since: at(0) }, t0), 'powering it off (not waiting for the guest)');
});

const instance = (phase: Instance['status']['phase'], message?: string) => ({ name: 'big4', status: { phase, message } }) as Instance;

test('after Ctrl-C: what keeps going for an instance, how to follow it and how to cancel it', () => {
  assert.equal(
    stillRunning('create', 'big4', instance('pending', 'no host has room')),
    'instance big4 is still being created (pending: no host has room); follow with `outrig instance show big4`, cancel with `outrig instance delete big4`',
  );
  assert.match(stillRunning('stop', 'big4', instance('stopping')), /still stopping \(stopping\); .*`outrig instance stop big4 --force`/);
  assert.match(stillRunning('restart', 'big4', instance('stopping')), /still restarting .*`outrig instance restart big4 --force`/);
  assert.match(
    stillRunning('create', 'web9', instance('starting')),
    /cancel with `outrig instance delete web9 --force`$/,
    'a booting VM is deleted only with --force',
  );
  assert.equal(stillRunning('create', 'big4', undefined), 'instance big4 is gone');
});

test('after Ctrl-C: a backup keeps running on its host, with its progress, and what can be done about it', () => {
  const b = {
    name: 'vm3-root-1',
    spec: {},
    status: { phase: 'running', hostId: 'h1', progress: { stage: 'backing up files', files: 12, bytes: 2048 } },
  } as unknown as Backup;
  assert.match(
    backupStillRunning('vm3-root-1', b),
    /^backup vm3-root-1 keeps running on host h1 — backing up files: 12 files, 2(\.0)? KiB; follow with `outrig backup show vm3-root-1`, cancel with `outrig backup cancel vm3-root-1`$/,
  );
});

test('a backup stage that counts nothing yet is named alone, not as "0 files, 0 B"', () => {
  assert.equal(progressText({ stage: 'copying the volume snapshot', files: 0, bytes: 0 }), ' — copying the volume snapshot');
  assert.match(progressText({ stage: 'backing up files', files: 3, bytes: 10 }), /backing up files: 3 files, 10 B/);
});
