/**
 * Status has one writer (src/controller/runtime/status-writer.ts): the store's update() refuses a
 * status change, and the lint rule refuses updateStatus anywhere else in src/. Linted as text at a
 * path inside src/: nothing is written.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { ESLint } from 'eslint';
import { openStore } from '../../../src/store/index.ts';
import { addHost } from '../../helpers/controller-fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const eslint = new ESLint({ cwd: ROOT });

async function problems(file: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  return r!.messages.filter((m) => m.ruleId === 'no-restricted-properties').map((m) => m.message);
}

test('a service writing status past the status writer is refused by the linter; the writer itself is not', async () => {
  const bypass = "export const mark = (store: any, id: string) => store.instances.updateStatus(id, () => null, 'other');\n";
  assert.match((await problems('src/controller/services/probe.ts', bypass))[0] ?? '', /only through the status writer/);
  assert.match((await problems('src/api/routes/probe.ts', bypass))[0] ?? '', /only through the status writer/);
  assert.deepEqual(await problems('src/controller/runtime/status-writer.ts', bypass), []);
});

test('the tree as it is writes status only through the status writer', async () => {
  const results = await eslint.lintFiles(['src']);
  const bad = results.flatMap((r) => r.messages.filter((m) => m.ruleId === 'no-restricted-properties').map((m) => `${r.filePath}:${m.line} ${m.message}`));
  assert.deepEqual(bad, []);
});

test("the store's update() refuses a status change, even one the type system cannot see", async () => {
  const store = await openStore({ kind: 'sqlite', path: ':memory:' });
  try {
    const h = await addHost(store, 'h-1', new Date());
    const sneaky = (c: typeof h) => ({ spec: c.spec, status: { ...c.status, phase: 'lost' } });
    await assert.rejects(store.hosts.update(h.id, sneaky), /Host status is written through updateStatus/);
    assert.equal((await store.hosts.get(h.id))!.status.phase, 'ready', 'nothing written');
  } finally {
    await store.close();
  }
});
