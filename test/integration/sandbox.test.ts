/**
 * The sandbox on its own: a confined tool that tries every way out of its work directory finds
 * none, even a tool that writes a guest's hostile names without checking them (debugfs rdump of
 * the traversal disk of test/helpers/hostile-disks.ts); it runs as a user of its own with no
 * capabilities and no network, and is stopped at its time, file-size and output limits.
 */
import assert from 'node:assert/strict';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runConfined, SANDBOX_UID } from '../../src/sandbox/index.ts';
import { buildHostileDisks } from '../helpers/hostile-disks.ts';
import { tempDir } from '../helpers/tmp.ts';

const tmp = tempDir('outrig-sandbox-');
after(() => tmp.remove());

function workDir(name: string): string {
  const w = join(tmp.path, name, 'work');
  mkdirSync(w, { recursive: true });
  return w;
}

test('a confined tool cannot write outside its work directory, read host files or reach the network', async () => {
  const work = workDir('escape');
  const outside = join(tmp.path, 'escape');
  const secret = join(tmp.path, 'secret');
  writeFileSync(secret, 'host secret\n', { mode: 0o600 });
  const server = createServer((s) => s.end('answered\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const script = [
    `cd ${work}`,
    'id -u > uid',
    'grep CapEff /proc/self/status > caps',
    'echo x > ../escape-relative',
    `echo x > ${outside}/escape-absolute`,
    `ln -s ${outside} out && echo x > out/escape-through-link`,
    'ln -s / root && echo x > root/tmp/escape-root-link',
    `mkdir -p ${outside}/escape-dir`,
    `cat ${secret} > secret-copy`,
    'cat /etc/shadow > shadow-copy',
    'echo x > /tmp/in-sandbox-tmp',
    `${process.execPath} -e "require('net').connect(${port}, '127.0.0.1').on('data', (d) => require('fs').writeFileSync('net', d)).on('error', (e) => require('fs').writeFileSync('net-error', e.code))"`,
    'true',
  ].join('; ');
  try {
    await runConfined('sh', ['-c', script], { writable: [work], timeoutMs: 30_000, maxFileBytes: 1024 * 1024, what: 'the escape script' });
  } finally {
    server.close();
  }
  const host = readdirSync(outside).sort();
  assert.deepEqual(host, ['work'], `written next to the work directory: ${host.join(', ')}`);
  assert.equal(existsSync('/tmp/in-sandbox-tmp'), false, "the sandbox's /tmp is the host's");
  assert.equal(Number(readFileSync(join(work, 'uid'), 'utf8')), SANDBOX_UID);
  assert.match(readFileSync(join(work, 'caps'), 'utf8'), /CapEff:\s+0+\n/);
  assert.equal(readFileSync(join(work, 'secret-copy'), 'utf8'), '', 'read a host file');
  assert.equal(readFileSync(join(work, 'shadow-copy'), 'utf8'), '', 'read /etc/shadow');
  assert.equal(existsSync(join(work, 'net')), false, 'reached a server on the host');
  assert.ok(existsSync(join(work, 'net-error')), 'the network attempt did not run');
});

test("even a tool that writes a guest's names unchecked stays in its work directory (debugfs rdump of the traversal disk)", async () => {
  const dir = join(tmp.path, 'corpus');
  mkdirSync(dir);
  const [traversal] = buildHostileDisks(dir, join(tmp.path, 'secret'));
  assert.equal(traversal!.name, 'traversal');
  // The sandbox's user reopens the image through /proc/self/fd: it may read this one file.
  chmodSync(traversal!.path, 0o644);
  const work = workDir('rdump');
  const fd = openSync(traversal!.path, 'r');
  try {
    await runConfined('debugfs', ['-R', `rdump / ${work}`, '/proc/self/fd/3?offset=1048576'], {
      fds: [fd],
      writable: [work],
      timeoutMs: 60_000,
      maxFileBytes: 64 * 1024 * 1024,
      what: 'debugfs',
    });
  } finally {
    closeSync(fd);
  }
  assert.ok(existsSync(join(work, 'etc', 'hostname')), 'rdump wrote nothing at all');
  for (const e of traversal!.escapes) assert.equal(existsSync(e), false, `${e} was written on the host`);
});

test('a confined tool is stopped at its time, file-size and output limits', async () => {
  const work = workDir('limits');
  await assert.rejects(runConfined('sleep', ['60'], { timeoutMs: 500, what: 'sleep' }), /sleep did not finish within 1 s and was stopped/);
  await assert.rejects(
    runConfined('sh', ['-c', `head -c 2000000 /dev/zero > ${work}/big`], { writable: [work], timeoutMs: 30_000, maxFileBytes: 1024 * 1024 }),
    /failed/,
  );
  assert.ok(statSync(join(work, 'big')).size <= 1024 * 1024);
  await assert.rejects(runConfined('yes', [], { timeoutMs: 30_000, maxOutputBytes: 100_000 }), /more than 100000 bytes of output/);
});
