/** Run by `npm start` and `npm test` before anything else: checks (and where possible installs) system packages. */
import { ensureRequirements, VM_REQUIREMENTS } from '../src/common/system-requirements.ts';

try {
  ensureRequirements(VM_REQUIREMENTS);
} catch (e) {
  process.stderr.write(`outrig: ${(e as Error).message}\n`);
  process.exit(1);
}
