import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageCache } from '../../src/agent/image-cache.ts';
import type { VmImageRef } from '../../src/model/agent-protocol.ts';
import { testPki } from '../helpers/pki.ts';
import { tempDir } from '../helpers/tmp.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

test('downloads once over mutual TLS, keeps only files whose sha256 matches', async () => {
  const dir = tempDir();
  const pki = await testPki(dir.path);
  const hostTls = await pki.host('host-1');
  const served: Record<string, string> = { kernel: 'the kernel', initrd: 'tampered initrd' };
  let requests = 0;
  const clients: string[] = [];
  const srv = createServer({ key: pki.server.key, cert: pki.server.cert, ca: pki.ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    requests++;
    clients.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
    const file = req.url!.split('/').pop()!;
    res.end(served[file]);
  }).listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  const url = `https://127.0.0.1:${(srv.address() as { port: number }).port}`;
  try {
    const cache = new ImageCache(
      join(dir.path, 'images'),
      () => url,
      () => ({ ca: pki.ca.certPem, ...hostTls }),
    );
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
    assert.ok(clients.length > 0 && clients.every((cn) => cn === 'host-1'), 'every download presented the host certificate');
  } finally {
    srv.close();
    dir.remove();
  }
});
