import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readBootstrapToken } from '../../../src/cli/commands/daemons.ts';
import { CliError } from '../../../src/cli/errors.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('the bootstrap token comes from a file or the environment, never an argument', async () => {
  const dir = tempDir();
  try {
    const file = join(dir.path, 'token');
    writeFileSync(file, 'tok-from-file\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    assert.equal(await readBootstrapToken(file, { OUTRIG_BOOTSTRAP_TOKEN: 'tok-from-env' }), 'tok-from-file', 'the file named on the command line wins');
    assert.equal(await readBootstrapToken(undefined, { OUTRIG_BOOTSTRAP_TOKEN: ' tok-from-env\n' }), 'tok-from-env');
    assert.equal(await readBootstrapToken(undefined, {}), undefined);
    writeFileSync(join(dir.path, 'empty'), '\n');
    await assert.rejects(
      readBootstrapToken(join(dir.path, 'empty'), {}),
      (e: CliError) => e instanceof CliError && e.exitCode === 2 && /is empty/.test(e.message),
    );
    await assert.rejects(readBootstrapToken(join(dir.path, 'missing'), {}), (e: CliError) => /cannot read --bootstrap-token-file .*ENOENT/.test(e.message));
  } finally {
    dir.remove();
  }
});
