import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Value } from 'typebox/value';
import fc from '../../helpers/fast-check.ts';
import { AgentMessage } from '../../../src/model/agent-protocol.ts';
import { DISK_PRESSURE, diskPressure, pressureThreshold, STORAGE_REFRESH_MS, storageWorthRecording } from '../../../src/controller/placement/disk-pressure.ts';

const GiB = 1024 ** 3;
const policy = { diskPressureFreeRatio: 0.1, diskPressureMinFreeBytes: 2 * GiB };
const report = (over: Partial<{ totalBytes: number; freeBytes: number; provisionedBytes: number; mayAllocateBytes: number }> = {}) => ({
  totalBytes: 100 * GiB,
  freeBytes: 50 * GiB,
  provisionedBytes: 40 * GiB,
  mayAllocateBytes: 20 * GiB,
  ...over,
});

test('the threshold is the larger of the ratio of the disk and the minimum', () => {
  assert.equal(pressureThreshold(100 * GiB, policy), 10 * GiB);
  assert.equal(pressureThreshold(10 * GiB, policy), 2 * GiB);
  assert.equal(pressureThreshold(64 << 20, { diskPressureFreeRatio: 0.25, diskPressureMinFreeBytes: 0 }), 16 << 20);
});

test('plenty free and volumes that fit: False, Sufficient', () => {
  const c = diskPressure(report(), policy);
  assert.equal(c.type, DISK_PRESSURE);
  assert.equal(c.status, 'False');
  assert.equal(c.reason, 'Sufficient');
  assert.match(c.message, /50 GiB free of 100 GiB/);
});

test('free space below the threshold: True, LowFreeSpace, before the disk is full, naming what is free', () => {
  const c = diskPressure(report({ freeBytes: 10 * GiB - 1, mayAllocateBytes: 0 }), policy);
  assert.equal(c.status, 'True');
  assert.equal(c.reason, 'LowFreeSpace');
  assert.match(c.message, /^10 GiB free of 100 GiB, below the 10 GiB to keep free/);
  assert.equal(diskPressure(report({ freeBytes: 10 * GiB, mayAllocateBytes: 0 }), policy).status, 'False', 'exactly at the threshold is not pressure');
  // A small disk: the minimum decides.
  assert.equal(diskPressure(report({ totalBytes: 8 * GiB, freeBytes: 1.5 * GiB, mayAllocateBytes: 0 }), policy).reason, 'LowFreeSpace');
});

test('volumes that may allocate more than is free: True, Overcommitted; low free space wins when both hold', () => {
  const c = diskPressure(report({ freeBytes: 30 * GiB, mayAllocateBytes: 31 * GiB }), policy);
  assert.equal(c.status, 'True');
  assert.equal(c.reason, 'Overcommitted');
  assert.match(c.message, /may still allocate 31 GiB, more than the 30 GiB free/);
  assert.equal(diskPressure(report({ freeBytes: 30 * GiB, mayAllocateBytes: 30 * GiB }), policy).status, 'False');
  const both = diskPressure(report({ freeBytes: 5 * GiB, mayAllocateBytes: 50 * GiB }), policy);
  assert.equal(both.reason, 'LowFreeSpace');
  assert.match(both.message, /may still allocate 50 GiB/);
});

test('pressure is True exactly when free space is under the threshold or the volumes may outgrow it', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 41 }),
      fc.double({ min: 0, max: 0.9, noNaN: true }),
      fc.nat({ max: 2 ** 32 }),
      (total, free, may, ratio, min) => {
        const p = { diskPressureFreeRatio: ratio, diskPressureMinFreeBytes: min };
        const c = diskPressure({ totalBytes: total, freeBytes: free, provisionedBytes: 0, mayAllocateBytes: may }, p);
        assert.equal(c.status === 'True', free < pressureThreshold(total, p) || may > free);
      },
    ),
  );
});

test('a report is recorded when it moves by 1% of the disk, changes the volumes or the condition, or after the refresh period', () => {
  const t0 = new Date('2024-01-01T00:00:00Z');
  const prev = { ...report(), reportedAt: t0.toISOString() };
  const soon = new Date(t0.getTime() + 1000);
  const later = new Date(t0.getTime() + STORAGE_REFRESH_MS);
  assert.equal(storageWorthRecording(undefined, report(), soon, policy), true, 'the first one');
  assert.equal(storageWorthRecording(prev, report(), later, policy), false, 'nothing changed');
  assert.equal(storageWorthRecording(prev, report({ freeBytes: 50 * GiB - 1024 ** 2 }), soon, policy), false, 'a small move, soon');
  assert.equal(storageWorthRecording(prev, report({ freeBytes: 50 * GiB - 1024 ** 2 }), later, policy), true, 'a small move, after the refresh period');
  assert.equal(storageWorthRecording(prev, report({ freeBytes: 49 * GiB }), soon, policy), true, '1% of the disk');
  assert.equal(storageWorthRecording(prev, report({ mayAllocateBytes: 21 * GiB }), soon, policy), true, '1% of the disk, promised');
  assert.equal(storageWorthRecording(prev, report({ provisionedBytes: 40 * GiB + 4096 }), soon, policy), true, 'a volume made or grown');
  // Just above and just below the threshold: less than 1% apart, but the condition changes.
  const edge = { ...report({ freeBytes: 10 * GiB + 1024 ** 2, mayAllocateBytes: 0 }), reportedAt: t0.toISOString() };
  assert.equal(storageWorthRecording(edge, report({ freeBytes: 10 * GiB - 1024 ** 2, mayAllocateBytes: 0 }), soon, policy), true);
});

test("a host's storage report is checked like the rest of its messages, and stays optional for older agents", () => {
  const msg = (storage?: unknown) => ({ type: 'report', vms: [], volumes: [], ...(storage === undefined ? {} : { storage }) });
  assert.equal(Value.Check(AgentMessage, msg()), true, 'an older agent sends none');
  assert.equal(Value.Check(AgentMessage, msg(report())), true);
  for (const bad of [
    { ...report(), freeBytes: -1 },
    { ...report(), totalBytes: 1.5 },
    { ...report(), mayAllocateBytes: '1' },
    { totalBytes: 1, freeBytes: 1, provisionedBytes: 1 },
    { ...report(), freeBytes: Number.POSITIVE_INFINITY },
  ]) {
    assert.equal(Value.Check(AgentMessage, msg(bad)), false, JSON.stringify(bad));
  }
});
