/**
 * Finds the test files (test/**\/*.test.ts) and runs them with Node's test runner, one file at a
 * time: the end-to-end files boot real VMs and the machines have two cores.
 * Usage: tsx scripts/run-tests.ts [dir-or-file ...]   (default: test/)
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(path: string): string[] {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.ts'))
    .map((f) => join(path, f))
    .sort();
}

const roots = process.argv.slice(2).length ? process.argv.slice(2) : ['test'];
const files = roots.flatMap(find);
// --test-force-exit: a file whose tests are all done exits even if something it started left a
// timer behind. Without it, a test file that had finished (trust.test.ts, once a test there had
// failed) kept its process alive on one leftover timer, and CI hung instead of reporting.
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=600000', '--test-force-exit', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
