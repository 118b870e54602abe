import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as tls from 'node:tls';
import { checkCsr, ClusterCa, createCsr, generateKeyPair, hasProfile, HOST_URI_PREFIX, publicKeyB64, x509 } from '../../../src/pki/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

describe('cluster CA', () => {
  const dir = tempDir();
  after(() => dir.remove());

  test('is created once, with its key readable only by its owner, and loads back the same', async () => {
    const a = await ClusterCa.loadOrCreate(join(dir.path, 'pki'));
    assert.equal(statSync(join(dir.path, 'pki', 'ca.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir.path, 'pki')).mode & 0o777, 0o700);
    const b = await ClusterCa.loadOrCreate(join(dir.path, 'pki'));
    assert.equal(b.fingerprint, a.fingerprint);
    assert.match(a.fingerprint, /^[0-9a-f]{64}$/);
    const pair = generateKeyPair();
    const issuedByB = await b.issue('host', { name: 'h1' }, pair.publicKey, 1);
    assert.ok(await a.verify(issuedByB.pem), 'the reloaded CA signs with the same key');
  });

  test('host certificates carry the host id, client-auth only, and verify only against their CA', async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir.path, 'pki'));
    const other = await ClusterCa.loadOrCreate(join(dir.path, 'other'));
    const pair = generateKeyPair();
    const c = await ca.issue('host', { name: 'host-abc' }, pair.publicKey, 30);
    const x = new X509Certificate(c.pem);
    assert.match(x.subject, /CN=host-abc/);
    assert.match(x.subject, /OU=hosts/);
    assert.equal(x.subjectAltName, `URI:${HOST_URI_PREFIX}host-abc`);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'client authentication only');
    assert.equal(x.ca, false);
    assert.ok(x.checkIssued(new X509Certificate(ca.certPem)));
    assert.ok(await ca.verify(c.pem));
    assert.equal(await other.verify(c.pem), false);
    assert.equal(await ca.verify(c.pem, new Date(Date.now() + 31 * 86_400_000)), false, 'not valid after it expires');
    assert.equal(publicKeyB64(x.publicKey.export({ type: 'spki', format: 'pem' }).toString()), publicKeyB64(pair.publicKey));
  });

  test('a profile is its OU and its extended key usage together: a port authenticator is a TLS server but not a controller', async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir.path, 'pki'));
    const k = generateKeyPair().publicKey;
    const ctl = new x509.X509Certificate((await ca.issue('server', { name: 'ctl', dnsNames: ['ctl'] }, k, 1)).pem);
    const radius = new x509.X509Certificate((await ca.issue('authenticator', { name: 'radius', dnsNames: ['radius'] }, k, 1)).pem);
    const host = new x509.X509Certificate((await ca.issue('host', { name: 'h1' }, k, 1)).pem);
    assert.deepEqual(new X509Certificate(radius.toString('pem')).keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server authentication, as its RADIUS clients expect');
    assert.match(radius.subject, /OU=authenticators/);
    assert.deepEqual([hasProfile(ctl, 'server'), hasProfile(radius, 'server'), hasProfile(host, 'server')], [true, false, false]);
    assert.deepEqual([hasProfile(radius, 'authenticator'), hasProfile(host, 'host')], [true, true]);
  });

  test('a CSR proves its key; a tampered one is refused', async () => {
    const pair = generateKeyPair();
    const pem = await createCsr('host-1', pair);
    const c = await checkCsr(pem);
    assert.equal(c.commonName, 'host-1');
    assert.equal(c.publicKeyB64, publicKeyB64(pair.publicKey));
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const i = der.indexOf(Buffer.from('host-1'));
    der[i + 5] = 0x32; // host-2: the signature no longer covers the content
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await assert.rejects(checkCsr(tampered), /does not verify/);
    await assert.rejects(checkCsr('not a csr'), /malformed CSR/);
  });

  test('mutual TLS: a server certificate from the CA is trusted; client certificates from another CA are not', async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir.path, 'pki'));
    const other = await ClusterCa.loadOrCreate(join(dir.path, 'other'));
    const sk = generateKeyPair();
    const server = await ca.issue('server', { name: 'ctl', ips: ['127.0.0.1'], dnsNames: ['localhost'] }, sk.publicKey, 1);
    const srv = tls.createServer({ key: sk.privateKey, cert: server.pem, ca: ca.certPem, requestCert: true, rejectUnauthorized: false }, (s) => {
      s.end(s.authorized ? `ok ${s.getPeerCertificate().subject.CN}` : `refused ${s.authorizationError}`);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const talk = (o: tls.ConnectionOptions) =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ...o });
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
    try {
      const hk = generateKeyPair();
      const mine = await ca.issue('host', { name: 'h1' }, hk.publicKey, 1);
      const foreign = await other.issue('host', { name: 'h1' }, hk.publicKey, 1);
      assert.equal(await talk({ ca: ca.certPem, key: hk.privateKey, cert: mine.pem }), 'ok h1');
      assert.match(await talk({ ca: ca.certPem, key: hk.privateKey, cert: foreign.pem }), /^refused/);
      await assert.rejects(talk({ ca: other.certPem }), /self-signed|unable to verify|certificate/i, 'a client pinning another CA does not trust this server');
    } finally {
      srv.close();
    }
  });
});
