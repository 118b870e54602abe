/**
 * `image import` takes an image from anywhere (a copy of a guest's disk): it reads the format from
 * the header instead of letting qemu-img guess, refuses qcow2 images that name a backing or data
 * file (either would make the import read a host file into the image), and converts confined.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { convertToOutrigDisk } from '../../src/cli/commands/image.ts';
import { DiskEngine } from '../../src/disk/index.ts';
import { tempDir } from '../helpers/tmp.ts';

const tmp = tempDir('outrig-import-');
after(() => tmp.remove());
const secret = join(tmp.path, 'host-secret.raw');
const SECRET = 'the host secret, never to be imported\n';

async function imported(src: string, format?: string, rawDespiteHeader?: boolean): Promise<Buffer> {
  const dest = join(tmp.path, `${Math.random().toString(16).slice(2)}.odsk`);
  await convertToOutrigDisk(src, dest, { format, rawDespiteHeader });
  const e = await DiskEngine.open(dest);
  try {
    return e.readBuffer(0, 4096);
  } finally {
    await e.close();
  }
}

test('a qcow2 image naming a host file as its backing file is refused, and nothing of that file is read', async () => {
  writeFileSync(secret, SECRET);
  truncateSync(secret, 1024 * 1024);
  const evil = join(tmp.path, 'backed.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', evil]);
  const dest = join(tmp.path, 'backed.odsk');
  const failure = await convertToOutrigDisk(evil, dest, {}).then(
    async () => (await DiskEngine.open(dest)).readBuffer(0, 64).toString(),
    (e: Error) => e,
  );
  assert.ok(failure instanceof Error, `imported: ${JSON.stringify(failure)}`);
  assert.match(failure.message, /names a backing file/);
  assert.equal(existsSync(dest), false);
  await assert.rejects(convertToOutrigDisk(evil, dest, { format: 'qcow2' }), /names a backing file/);
});

test('a qcow2 image with an external data file is refused', async () => {
  const evil = join(tmp.path, 'data-file.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${secret},data_file_raw=on`, evil, '1M']);
  await assert.rejects(convertToOutrigDisk(evil, join(tmp.path, 'data-file.odsk')), /keeps its data in an external file/);
});

test('a raw disk whose first bytes look like a qcow2 header: as raw (insisted on), its own bytes; declared raw alone or guessed, refused', async () => {
  const evil = join(tmp.path, 'backed-header.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', secret, '-F', 'raw', evil]);
  const raw = join(tmp.path, 'looks-like-qcow2.raw');
  writeFileSync(raw, readFileSync(evil).subarray(0, 4096));
  truncateSync(raw, 1024 * 1024);
  await assert.rejects(imported(raw, 'raw'), /it is a qcow2 image .*--format raw --raw-despite-header/);
  const data = await imported(raw, 'raw', true);
  assert.ok(data.equals(readFileSync(raw).subarray(0, 4096)), 'a raw import is the file as it is');
  assert.ok(!data.includes(Buffer.from('host secret')));
  await assert.rejects(convertToOutrigDisk(raw, join(tmp.path, 'guessed.odsk')), /names a backing file/);
});

test('a plain qcow2 image imports with its content', async () => {
  const ok = join(tmp.path, 'plain.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ok, '1M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 4k', ok], { stdio: 'ignore' });
  assert.ok((await imported(ok)).equals(Buffer.alloc(4096, 0x5a)));
  await assert.rejects(convertToOutrigDisk(ok, join(tmp.path, 'x.odsk'), { format: 'vmdk' }), /format vmdk is not supported/);
});
