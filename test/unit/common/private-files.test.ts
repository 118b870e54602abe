/**
 * Data, logs and the host's identity are the owner's only, however the process's umask is set and
 * whatever an earlier version left behind (issue 15, finding 12).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, mkdirSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { loadHostId } from '../../../src/agent/host-identity.ts';
import { createLogger } from '../../../src/common/log.ts';
import { ensurePrivateDir } from '../../../src/common/secrets.ts';
import { tempDir } from '../../helpers/tmp.ts';

const mode = (p: string) => (statSync(p).mode & 0o7777).toString(8);
let umask: number;
before(() => (umask = process.umask(0o022)));
after(() => process.umask(umask));

test('a data directory is made 0700, and one left 0755 is tightened; a shared (sticky) one is refused', async () => {
  const dir = tempDir();
  try {
    await ensurePrivateDir(join(dir.path, 'root', 'logs'));
    assert.equal(mode(join(dir.path, 'root')), '700');
    assert.equal(mode(join(dir.path, 'root', 'logs')), '700');
    mkdirSync(join(dir.path, 'old'), { mode: 0o755 });
    await ensurePrivateDir(join(dir.path, 'old'));
    assert.equal(mode(join(dir.path, 'old')), '700');
    mkdirSync(join(dir.path, 'shared'));
    chmodSync(join(dir.path, 'shared'), 0o1777);
    await assert.rejects(ensurePrivateDir(join(dir.path, 'shared')), /shared directory/);
    assert.equal(mode(join(dir.path, 'shared')), '1777', 'left alone');
  } finally {
    dir.remove();
  }
});

test('the host id file is 0600 in a 0700 directory, also when an earlier version wrote it 0644', async () => {
  const dir = tempDir();
  try {
    const fresh = join(dir.path, 'agent', 'host-id');
    await loadHostId(fresh);
    assert.equal(mode(fresh), '600');
    assert.equal(mode(join(dir.path, 'agent')), '700');
    const old = join(dir.path, 'old-host-id');
    writeFileSync(old, 'h-0123456789abcdef\n', { mode: 0o644 });
    assert.equal(await loadHostId(old), 'h-0123456789abcdef');
    assert.equal(mode(old), '600');
  } finally {
    dir.remove();
  }
});

/** A file logger, once its file is open (it opens asynchronously), and closed again. */
async function openLogger(file: string): Promise<void> {
  const stream = (createLogger('test', { file }) as unknown as Record<symbol, WriteStream>)[pino.symbols.streamSym]!;
  if (stream.pending) await once(stream, 'open');
  stream.end();
  await once(stream, 'close');
}

test('a log file is 0600, also one an earlier version left 0644', async () => {
  const dir = tempDir();
  try {
    const fresh = join(dir.path, 'controller.log');
    await openLogger(fresh);
    assert.equal(mode(fresh), '600');
    const old = join(dir.path, 'agent.log');
    writeFileSync(old, '', { mode: 0o644 });
    await openLogger(old);
    assert.equal(mode(old), '600');
  } finally {
    dir.remove();
  }
});
