/**
 * soak:crash — the power-loss simulator (test/helpers/power-loss) over many crash states: every
 * workload is recorded once per seed, crash states are cut from its log, and each is opened and
 * checked (acknowledged data exact, nothing else where it must not be, `disk check` clean); one in
 * five also gets a recovery session whose own crash states are checked. npm test explores a
 * bounded set (test/integration/disk/power-loss.test.ts); this explores many more.
 *
 * Usage: npm run soak:crash [-- --states N (default 100000) | --seed S (default 1) | --quick]
 * Ends with `states=<n> failures=<n>`; exits 1 when a state fails, listing the first ones.
 */
import { explore, type Failure } from '../test/helpers/power-loss/explore.ts';
import { WORKLOADS } from '../test/helpers/power-loss/workloads.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} wants a positive whole number, not '${process.argv[i + 1] ?? ''}'`);
  return v;
}

const quick = process.argv.includes('--quick');
const total = quick ? 300 : arg('--states', 100_000);
const seed = arg('--seed', 1);
// The large-rounds workload costs about 20 times a small one per state: it gets a small share.
const LARGE_SHARE = 0.01;
const RUN = 400; // states per recorded run of a workload, each run with its own seed

const small = WORKLOADS.filter((w) => w.size <= 4 << 20);
const large = WORKLOADS.filter((w) => w.size > 4 << 20);
const plan = [
  ...small.map((w) => ({ w, states: Math.round((total * (1 - (large.length ? LARGE_SHARE : 0))) / small.length) })),
  ...large.map((w) => ({ w, states: Math.max(quick ? 4 : 16, Math.round((total * LARGE_SHARE) / large.length)) })),
];

let states = 0;
const failures: Failure[] = [];
const started = Date.now();
for (const { w, states: want } of plan) {
  let done = 0;
  for (let run = 0; done < want; run++) {
    const n = Math.min(RUN, want - done);
    // Recovery sessions' states count too: ask for fewer so the run stays near its share.
    const r = await explore(w, { states: Math.ceil(n / 1.6), seed: seed * 1_000_003 + run, recoveryEvery: 5, recoveryStates: 3 });
    done += r.states;
    states += r.states;
    failures.push(...r.failures);
    process.stderr.write(`\r${w.name}: ${done}/${want} states, ${failures.length} failures, ${((Date.now() - started) / 1000).toFixed(0)} s   `);
  }
  process.stderr.write('\n');
}
for (const f of failures.slice(0, 20)) process.stderr.write(`FAIL ${f.workload}: ${f.state}: ${f.problem}\n`);
process.stdout.write(`states=${states} failures=${failures.length}\n`);
process.exitCode = failures.length ? 1 : 0;
