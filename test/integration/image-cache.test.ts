import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageCache } from '../../src/agent/image-cache.ts';
import type { VmImageRef } from '../../src/model/agent-protocol.ts';
import { tempDir } from '../helpers/tmp.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

test('downloads once with the token, keeps only files whose sha256 matches', async () => {
  const dir = tempDir();
  const served: Record<string, string> = { kernel: 'the kernel', initrd: 'tampered initrd' };
  let requests = 0;
  const auth: string[] = [];
  const srv = createServer((req, res) => {
    requests++;
    auth.push(req.headers.authorization ?? '');
    const file = req.url!.split('/').pop()!;
    res.end(served[file]);
  }).listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  try {
    const cache = new ImageCache(join(dir.path, 'images'), url, 'secret-token');
    const img: VmImageRef = {
      id: 'img-1',
      name: 'test',
      cmdline: '',
      files: { kernel: { sha256: sha('the kernel'), size: 10 }, initrd: { sha256: sha('the initrd'), size: 10 } },
    };
    await assert.rejects(cache.ensure(img), /initrd of image test has sha256 .* expected/);
    assert.deepEqual(readdirSync(join(dir.path, 'images')).sort(), [sha('the kernel')], 'the bad file is not kept, not even partly');
    served.initrd = 'the initrd';
    const paths = await cache.ensure(img);
    assert.ok(existsSync(paths.kernel) && existsSync(paths.initrd));
    const before = requests;
    await cache.ensure(img);
    assert.equal(requests, before, 'verified files are not downloaded again');
    assert.ok(auth.every((a) => a === 'Bearer secret-token'));
  } finally {
    srv.close();
    dir.remove();
  }
});
