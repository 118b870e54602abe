import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CredentialStore, lifetimeLeft } from '../../../src/agent/credentials.ts';
import { ClusterCa, generateKeyPair } from '../../../src/pki/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('credentials: the key is private, and a rotation interrupted after its files are written completes on the next load', async () => {
  const dir = tempDir();
  try {
    const ca = await ClusterCa.loadOrCreate(join(dir.path, 'ca'));
    const store = new CredentialStore(join(dir.path, 'agent'));
    const k1 = await store.keys();
    assert.equal(statSync(join(store.dir, 'host.key')).mode & 0o777, 0o600);
    assert.equal(await store.load(), null, 'no certificate yet');
    const c1 = await ca.issue('host', { name: 'h1' }, k1.publicKey, 30);
    await store.save({ certPem: c1.pem, caPem: ca.certPem, controllerUrl: 'https://127.0.0.1:1', caFingerprint: ca.fingerprint });
    assert.equal((await store.load())!.certPem, c1.pem);
    assert.ok(lifetimeLeft(c1.pem) > 0.99);
    assert.ok(lifetimeLeft(c1.pem, Date.now() + 25 * 86_400_000) < 1 / 3);

    // A rotation that crashed after writing the new set but before renaming all of it.
    const k2 = generateKeyPair();
    const c2 = await ca.issue('host', { name: 'h1' }, k2.publicKey, 30);
    await store.save({ certPem: c2.pem, caPem: ca.certPem, controllerUrl: 'https://127.0.0.1:1', caFingerprint: ca.fingerprint }, k2);
    // Rebuild that state: the new key in place, the new certificate still waiting as .new.
    renameSync(join(store.dir, 'host.crt'), join(store.dir, 'host.crt.new'));
    writeFileSync(join(store.dir, 'host.crt'), c1.pem);
    const again = new CredentialStore(join(dir.path, 'agent'));
    assert.equal((await again.keys()).privateKey, k2.privateKey);
    assert.equal((await again.load())!.certPem, c2.pem, 'the certificate matching the key wins');
    assert.equal(existsSync(join(store.dir, 'host.crt.new')), false);
    assert.equal(readFileSync(join(store.dir, 'host.pub'), 'utf8'), k2.publicKey);
  } finally {
    dir.remove();
  }
});
