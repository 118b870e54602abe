/**
 * Revocation of every kind of certificate the cluster CA issues: a host's superseded certificate
 * after a renewal, and operators' and port authenticators' certificates, by serial or by name;
 * each refused from then on and listed in the CRL.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { enroll } from '../../src/agent/enroll.ts';
import { startAgent } from '../../src/agent/index.ts';
import { ApiClient, ApiRequestError } from '../../src/cli/client.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import { AGENT_STREAM_PATH } from '../../src/model/agent-protocol.ts';
import type { Host } from '../../src/model/host.ts';
import type { Certificate } from '../../src/model/trust.ts';
import { createCsr, generateKeyPair, x509 } from '../../src/pki/index.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { tlsFetch } from '../helpers/https.ts';
import { capturingLog } from '../helpers/log.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

type Tls = { ca: string; cert: string; key: string };

/** Opens the agent stream with a client certificate: 101 (open) or the HTTP status and the refusal reason. */
function openStream(url: string, tls: Tls): Promise<{ status: number; reason?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url.replace('https', 'wss') + AGENT_STREAM_PATH, tls);
    ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0, reason: String(res.headers['x-outrig-reason'] ?? '') }));
    ws.on('open', () => {
      resolve({ status: 101 });
      ws.close();
    });
    ws.on('error', () => undefined);
  });
}

/** Serials in one spelling: lower-case hex without leading zeros. */
const norm = (serial: string) => serial.toLowerCase().replace(/^0+/, '');
const serialOf = (pem: string) => norm(new X509Certificate(pem).serialNumber);

describe('revocation', () => {
  const dir = tempDir();
  let ctl: RunningController;
  let api: ApiClient;
  const ctlLog = capturingLog();

  before(async () => {
    ctl = await startController({ dataDir: join(dir.path, 'controller'), host: '127.0.0.1', port: 0, log: ctlLog.log, heartbeatMs: 300 });
    api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
  });

  after(async () => {
    await ctl?.close();
    await killProcessesUnder(dir.path);
    dir.remove();
  });

  const crlSerials = async () => {
    const res = await tlsFetch(`${ctl.url}/v1/pki/crl`, { tls: { ca: ctl.trust.ca.certPem } });
    return new x509.X509Crl(await res.text()).entries.map((e) => norm(e.serialNumber));
  };
  const renew = (tls: Tls, hostId: string, keys = generateKeyPair()) =>
    createCsr(hostId, keys).then((csr) =>
      tlsFetch(`${ctl.url}/v1/agent/renew`, { tls, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ csr }) }),
    );

  test('renewing revokes the superseded certificate: it opens no stream, calls no API, and the CRL lists it', async () => {
    const { token } = await api.post<{ token: string }>('/v1/enrollment-rules', { name: 'renewer', kind: 'token' });
    const keys = generateKeyPair();
    const creds = await enroll({
      identity: { hostId: 'h-renewer', name: 'renewer', keys },
      mode: { kind: 'direct', controllerUrl: ctl.url, caPem: ctl.trust.ca.certPem },
      bootstrapToken: token,
      log: capturingLog().log,
    });
    const old: Tls = { ca: ctl.trust.ca.certPem, cert: creds.certPem, key: keys.privateKey };
    assert.equal((await openStream(ctl.url, old)).status, 101, 'the certificate works before the renewal');

    const fresh = generateKeyPair();
    const res = await renew(old, 'h-renewer', fresh);
    assert.equal(res.status, 200);
    const renewed: Tls = { ca: ctl.trust.ca.certPem, cert: ((await res.json()) as { certificate: string }).certificate, key: fresh.privateKey };

    // The attack: keep using a copy of the old certificate (and its key).
    const again = await openStream(ctl.url, old);
    assert.equal(again.status, 401);
    assert.match(again.reason!, /revoked/);
    const viaApi = await renew(old, 'h-renewer');
    assert.equal(viaApi.status, 401);
    await viaApi.arrayBuffer();
    assert.ok((await crlSerials()).includes(serialOf(old.cert)));
    assert.equal((await openStream(ctl.url, renewed)).status, 101, 'the renewed one works');
  });

  test('an agent that renews reconnects on its new certificate; revoking that one by serial cuts its stream at once', { timeout: 90_000 }, async () => {
    // Certificates of about 9 s (plus the minute of clock slack before notBefore): the agent renews at start.
    const short = await startController({
      dataDir: join(dir.path, 'short-ctl'),
      host: '127.0.0.1',
      port: 0,
      log: ctlLog.log,
      hostCertDays: 0.0001,
      heartbeatMs: 300,
    });
    const shortApi = new ApiClient(short.url, { ca: short.trust.ca.certPem, token: short.adminToken });
    const { token } = await short.trust.addRule('short', { kind: 'token' });
    const agentLog = capturingLog();
    const pki = join(dir.path, 'agent-short', 'pki');
    const a = await startAgent({
      dataDir: join(dir.path, 'agent-short'),
      name: 'short',
      join: { kind: 'direct', controllerUrl: short.url, caPem: short.trust.ca.certPem },
      bootstrapToken: token,
      log: agentLog.log,
    });
    try {
      await waitUntil('the certificate to be renewed', () => agentLog.lines().some((l) => l.includes('certificate renewed')), 15_000, 50);
      const current = serialOf(readFileSync(join(pki, 'host.crt'), 'utf8'));
      const certs = (await short.store.certificates.list()).filter((c) => c.spec.hostId === a.hostId);
      assert.deepEqual(certs.map((c) => [norm(c.name) === current ? 'new' : 'old', c.status.phase]).sort(), [
        ['new', 'valid'],
        ['old', 'revoked'],
      ]);
      await waitUntil(
        'the agent to be connected on its new certificate',
        async () => {
          const on = ctlLog.lines().some((l) => l.includes('"agent connected"') && l.includes(`"serial":"${current}"`));
          return on && (await shortApi.get<Host>(`/v1/hosts/${a.hostId}`)).status.phase === 'ready';
        },
        15_000,
        50,
      );

      // A connected host is not deleted behind its back.
      await assert.rejects(shortApi.delete(`/v1/hosts/${a.hostId}`), (e: Error) => e instanceof ApiRequestError && e.status === 409 && e.code === 'connected');
      const [revoked] = (await shortApi.post<{ items: Certificate[] }>(`/v1/certificates/${current}/revoke`)).items;
      assert.equal(revoked!.status.phase, 'revoked');
      await waitUntil(
        'the stream on the revoked certificate to be cut',
        async () => !(await shortApi.get<Host>(`/v1/hosts/${a.hostId}`)).status.agent.connected,
        5_000,
        20,
      );
      await waitUntil('the agent to be refused', () => agentLog.lines().some((l) => l.includes('client certificate revoked')), 10_000, 50);
    } finally {
      await a.close();
      await short.close();
    }
  });

  test('operator and port-authenticator certificates are revoked by name or serial: refused at once and listed in the CRL', async () => {
    const issue = async (path: string, name: string) => {
      const keys = generateKeyPair();
      const { certificate } = await api.post<{ certificate: string }>(path, { name, publicKey: keys.publicKey });
      return { ca: ctl.trust.ca.certPem, cert: certificate, key: keys.privateKey };
    };
    const alice = await issue('/v1/operator-certificates', 'alice');
    const switchOp = await issue('/v1/operator-certificates', 'sw1');
    const authenticator = await issue('/v1/port-authenticator-certificates', 'sw1');
    const hostsWith = async (tls: Tls) => {
      const r = await tlsFetch(`${ctl.url}/v1/hosts`, { tls });
      await r.arrayBuffer();
      return r.status;
    };
    assert.equal(await hostsWith(alice), 200);

    const refused = async (path: string, code: string) => {
      await assert.rejects(api.post(path), (e: Error) => e instanceof ApiRequestError && e.code === code);
    };
    await refused('/v1/certificates/sw1/revoke', 'ambiguous_ref');
    await refused('/v1/certificates/nobody/revoke', 'not_found');
    const { items } = await api.post<{ items: Certificate[] }>('/v1/certificates/sw1/revoke?profile=authenticator');
    assert.deepEqual(
      items.map((c) => [norm(c.name), c.spec.profile, c.status.phase]),
      [[serialOf(authenticator.cert), 'authenticator', 'revoked']],
    );
    assert.equal(await hostsWith(switchOp), 200, 'the operator of the same name keeps its certificate');

    const byName = await api.post<{ items: Certificate[] }>('/v1/certificates/alice/revoke');
    assert.deepEqual(
      byName.items.map((c) => c.status.phase),
      ['revoked'],
    );
    assert.equal(await hostsWith(alice), 401);
    await api.post(`/v1/certificates/${serialOf(switchOp.cert)}/revoke`);
    assert.equal(await hostsWith(switchOp), 401);
    assert.equal((await api.post<{ items: Certificate[] }>('/v1/certificates/alice/revoke')).items.length, 1, 'revoking again is no error');

    const crl = await crlSerials();
    for (const c of [alice, switchOp, authenticator]) assert.ok(crl.includes(serialOf(c.cert)));
    const listed = (await api.get<{ items: Certificate[] }>('/v1/certificates?profile=operator')).items;
    assert.deepEqual(listed.map((c) => [c.spec.subject, c.status.phase]).sort(), [
      ['CN=alice', 'revoked'],
      ['CN=sw1', 'revoked'],
    ]);
  });
});
