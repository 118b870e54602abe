import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClusterCa } from '../../../src/pki/ca.ts';
import { generateKeyPair } from '../../../src/pki/keys.ts';
import { profileOf, VNET_OID, vnetExtension, vnetSegments } from '../../../src/pki/profiles.ts';
import { x509 } from '../../../src/pki/x509.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('the virtual-network extension is one DER UTF8String, as shared/research/dot1x.md measured FreeRADIUS reading it', () => {
  const e = vnetExtension([42]);
  assert.equal(e.type, VNET_OID);
  assert.equal(e.critical, false);
  assert.equal(Buffer.from(e.value).toString('hex'), '0c07766e65742d3432'); // UTF8String "vnet-42"
  const many = vnetExtension([100, 16777215]);
  assert.equal(Buffer.from(many.value).subarray(2).toString('utf8'), 'vnet-100,vnet-16777215');
  assert.throws(() => vnetExtension([]), /at least one virtual network/);
});

test('principal certificates carry the host, client authentication and their networks; others carry none', async () => {
  const dir = tempDir();
  try {
    const ca = await ClusterCa.loadOrCreate(dir.path);
    const key = generateKeyPair();
    const p = new x509.X509Certificate((await ca.issue('principal', { name: 'h1', hostId: 'h-1', segments: [100, 205] }, key.publicKey, 30)).pem);
    assert.deepEqual(vnetSegments(p), [100, 205]);
    assert.deepEqual(profileOf(p), { profile: 'principal', name: 'h1' });
    assert.ok(p.getExtension(x509.ExtendedKeyUsageExtension)?.usages.includes(x509.ExtendedKeyUsage.clientAuth));
    assert.deepEqual(
      p.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.map((n) => n.value),
      ['urn:outrig:host:h-1'],
    );
    const host = new x509.X509Certificate((await ca.issue('host', { name: 'h-1' }, key.publicKey, 30)).pem);
    assert.deepEqual(vnetSegments(host), []);
  } finally {
    dir.remove();
  }
});
