/**
 * Every benchmark (and soak:crash) in its --quick mode, as `npm run NAME -- --quick`: each must complete and
 * print its figures line. A smoke test only (a benchmark nobody runs breaks silently: bench:launch
 * had stopped working when the API moved to TLS); the figures are neither checked nor recorded.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = join(import.meta.dirname, '..', '..');

const BENCHES: [string, RegExp][] = [
  ['soak:crash', /^states=\d+ failures=0$/m],
  ['bench:enroll', /^hosts=30 seconds=[\d.]+$/m],
  ['bench:memory', /^dram_saved_pct=-?[\d.]+ short_vmtime_pct=[\d.]+$/m],
  ['bench:backup', /^initial_vs_restic=[\d.]+ incremental_vs_restic=[\d.]+ restore_vs_restic=[\d.]+ size_vs_restic=[\d.]+$/m],
  ['bench:launch', /^launch_vs_qemu=[\d.]+$/m],
  ['bench:network', /^hosts=2 throughput_vs_floor=[\d.]+ latency_vs_floor=[\d.]+$/m],
  ['bench:controller', /^create_\d+_s=[\d.]+ idle_cpu_pct=[\d.]+ queries_per_reconcile=[\d.]+$/m],
  [
    'bench:disk',
    /^alloc_qd32_vs_qcow2=[\d.]+ alloc_qd32_vs_raw=[\d.]+ flush32_vs_raw=[\d.]+ flush32_vs_qcow2=[\d.]+ wb_vs_raw=[\d.]+ seqread_after_rand_vs_raw=[\d.]+ min_other_vs_raw=[\d.]+$/m,
  ],
];

for (const [name, figures] of BENCHES) {
  test(`npm run ${name} -- --quick completes and prints its figures`, () => {
    const r = spawnSync('npm', ['run', '-s', name, '--', '--quick'], { cwd: ROOT, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
    assert.equal(r.status, 0, `${name} failed (${r.status ?? r.signal}):\n${r.stderr.slice(-4000)}`);
    assert.match(r.stdout, figures, `${name} printed no figures line:\n${r.stdout.slice(-2000)}`);
  });
}
