/** The QMP client when the monitor is not there: a clean error, and nothing left to crash the agent later. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { QmpClient } from '../../../src/hypervisor/qmp.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('connecting to a monitor socket that is gone rejects once, with no unhandled rejection behind it', async () => {
  // The agent reconnects QMP on every sweep; a QEMU that just exited leaves exactly this.
  const dir = tempDir();
  const unhandled: unknown[] = [];
  const on = (e: unknown) => void unhandled.push(e);
  process.on('unhandledRejection', on);
  try {
    await assert.rejects(QmpClient.connect(join(dir.path, 'qmp.sock')), /ENOENT/);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', on);
    dir.remove();
  }
});
