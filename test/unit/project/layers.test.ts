/**
 * The layering rule (eslint-rules/layers.mjs, run by `npm run lint`) refuses deliberately wrong
 * imports and accepts the right ones. The code is linted as text at a path inside src/: nothing is written.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ESLint } from 'eslint';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const eslint = new ESLint({ cwd: ROOT });

async function problems(file: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  return r!.messages.filter((m) => m.ruleId === 'outrig/layers').map((m) => m.message);
}

test('an upward import is refused: the controller importing the API, the store importing the controller', async () => {
  assert.match((await problems('src/controller/probe.ts', "export { buildApi } from '../api/index.ts';\n"))[0] ?? '', /controller must not import api/);
  assert.match((await problems('src/store/probe.ts', "export { Controller } from '../controller/index.ts';\n"))[0] ?? '', /store must not import controller/);
  assert.match((await problems('src/disk/probe.ts', "export { openStore } from '../store/index.ts';\n"))[0] ?? '', /disk must not import store/);
});

test("another subsystem's insides are refused; its index.ts, the model and common are not", async () => {
  assert.match(
    (await problems('src/api/probe.ts', "export { RateLimitedQueue } from '../controller/runtime/queue.ts';\n"))[0] ?? '',
    /only through controller\/index\.ts/,
  );
  assert.deepEqual(
    await problems(
      'src/api/probe.ts',
      "export { Controller } from '../controller/index.ts';\nexport type { Host } from '../model/host.ts';\nexport { VERSION } from '../common/version.ts';\n",
    ),
    [],
  );
  // The controller's own memory/ folder is not src/memory: paths are resolved, not matched as text.
  assert.deepEqual(await problems('src/controller/hosts/probe.ts', "export { poolModel } from '../memory/pools.ts';\n"), []);
  assert.match(
    (await problems('src/controller/hosts/probe.ts', "export { planBalloons } from '../../memory/policy.ts';\n"))[0] ?? '',
    /only through memory\/index\.ts/,
  );
});

test('an API route importing another route is refused', async () => {
  assert.match((await problems('src/api/routes/probe.ts', "export { instanceRoutes } from './instances.ts';\n"))[0] ?? '', /must not import another route/);
});

test('the tree as it is passes the rule', async () => {
  const results = await eslint.lintFiles(['src']);
  const bad = results.flatMap((r) => r.messages.filter((m) => m.ruleId === 'outrig/layers').map((m) => `${r.filePath}:${m.line} ${m.message}`));
  assert.deepEqual(bad, []);
});
