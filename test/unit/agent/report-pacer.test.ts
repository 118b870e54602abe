import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pacing, ReportPacer } from '../../../src/agent/report-pacer.ts';
import type { AgentMessage, VmReport } from '../../../src/model/agent-protocol.ts';

type Report = Extract<AgentMessage, { type: 'report' }>;

const vm = (id: string, over: Partial<VmReport> = {}): VmReport => ({
  instanceId: id,
  state: 'running',
  accel: 'tcg',
  forwards: [],
  generation: 1,
  restartSeq: 0,
  disks: [],
  memory: { actualMiB: 512, usedMiB: 200 },
  ...over,
});
const report = (vms: VmReport[], freeBytes = 1000): Report => ({
  type: 'report',
  vms,
  volumes: [],
  storage: { totalBytes: 4000, freeBytes, provisionedBytes: 0, mayAllocateBytes: 0 },
});

test('an idle agent sends its report once a heartbeat, not every sweep', () => {
  // Heartbeat 10 s, sweeps every 2 s: sweeps at 2, 4, 6, 8 s find nothing new; the one at 10 s is the heartbeat.
  const p = new ReportPacer(10_000, 2_000);
  const r = report([vm('i-1'), vm('i-2')]);
  assert.equal(p.due(r, 0), true, 'the first sweep on a connection reports');
  p.markSent(r, 0);
  const sent: number[] = [];
  for (let t = 2_000; t <= 30_000; t += 2_000) {
    // Each sweep builds a new report with the same contents, drifting a little later each time.
    const now = t + t / 100;
    if (p.due(report([vm('i-1'), vm('i-2')]), now)) {
      sent.push(t);
      p.markSent(r, now);
    }
  }
  assert.deepEqual(sent, [10_000, 20_000, 30_000]);
});

test('with the sweep as long as the heartbeat, every sweep reports (short test heartbeats keep working)', () => {
  const p = new ReportPacer(500, 500);
  const r = report([vm('i-1')]);
  p.markSent(r, 0);
  // A sweep that fires a little early still reports.
  assert.equal(p.due(r, 480), true);
});

test('a change is reported at the next sweep; guests memory moving a little is not a change', () => {
  const p = new ReportPacer(10_000, 2_000);
  p.markSent(report([vm('i-1')]), 0);
  assert.equal(p.due(report([vm('i-1', { memory: { actualMiB: 510, usedMiB: 205 } })]), 2_000), false, 'within the deadband');
  assert.equal(p.due(report([vm('i-1', { memory: { actualMiB: 512, usedMiB: 208 } })]), 2_000), true, 'used memory moved 8 MiB');
  assert.equal(p.due(report([vm('i-1', { memory: { actualMiB: 508, usedMiB: 200 } })]), 2_000), true, 'the balloon moved 4 MiB');
  assert.equal(p.due(report([vm('i-1', { memory: { targetMiB: 511, actualMiB: 512, usedMiB: 200 } })]), 2_000), true, 'a new balloon target');
  assert.equal(p.due(report([vm('i-1', { state: 'stopped' })]), 2_000), true, 'a VM stopped');
  assert.equal(p.due(report([vm('i-1'), vm('i-2')]), 2_000), true, 'a VM appeared');
  assert.equal(p.due(report([vm('i-2')]), 2_000), true, 'a VM was replaced by another');
  assert.equal(p.due(report([vm('i-1')], 999), 2_000), true, 'the disk space moved');
  assert.equal(p.due(report([vm('i-1', { memory: undefined })]), 2_000), true, 'memory figures went');
});

test('small moves add up: compared with the report last sent, not the last sweep', () => {
  const p = new ReportPacer(10_000, 2_000);
  p.markSent(report([vm('i-1')]), 0);
  const used = [203, 206, 209];
  const due = used.map((u, i) => p.due(report([vm('i-1', { memory: { actualMiB: 512, usedMiB: u } })]), 2_000 * (i + 1)));
  assert.deepEqual(due, [false, false, true]);
});

test("a welcome's periods are kept sane: nonsense falls back to the defaults, a sweep never outlasts the heartbeat", () => {
  assert.deepEqual(pacing(10_000, 2_000), { heartbeatMs: 10_000, sweepMs: 2_000 });
  assert.deepEqual(pacing(500, 500), { heartbeatMs: 500, sweepMs: 500 });
  assert.deepEqual(pacing(500, undefined), { heartbeatMs: 500, sweepMs: 500 }, 'an older controller sends no sweep');
  assert.deepEqual(pacing(0, 0), { heartbeatMs: 10_000, sweepMs: 2_000 });
  assert.deepEqual(pacing(Number.NaN, -5), { heartbeatMs: 10_000, sweepMs: 2_000 });
  assert.deepEqual(pacing('1000', 1.5), { heartbeatMs: 10_000, sweepMs: 2_000 });
  assert.deepEqual(pacing(1e12, 3_000), { heartbeatMs: 10_000, sweepMs: 3_000 });
  assert.deepEqual(pacing(1_000, 5_000), { heartbeatMs: 1_000, sweepMs: 1_000 });
});
