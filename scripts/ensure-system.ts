/**
 * Run by `npm start`, `npm test` and the benchmarks before anything else: checks (and where
 * possible installs) the system packages they need. Arguments name requirement sets
 * (vm, disk-tests, bench); the default is vm.
 */
import { ensureRequirements, REQUIREMENT_SETS, type Requirement } from '../src/common/system-requirements.ts';

const names = process.argv.slice(2).length ? process.argv.slice(2) : ['vm'];
const reqs: Requirement[] = [];
for (const n of names) {
  const set = REQUIREMENT_SETS[n];
  if (!set) {
    process.stderr.write(`outrig: unknown requirement set '${n}' (known: ${Object.keys(REQUIREMENT_SETS).join(', ')})\n`);
    process.exit(2);
  }
  reqs.push(...set);
}
try {
  ensureRequirements(reqs);
} catch (e) {
  process.stderr.write(`outrig: ${(e as Error).message}\n`);
  process.exit(1);
}
