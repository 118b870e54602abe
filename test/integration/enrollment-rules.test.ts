/**
 * Enrollment rules against a stranger on the network: a script with no credentials that claims
 * whatever host id and labels a rule matches. Only a bootstrap token or a host key registered in
 * advance admits; a rule that admits on claims alone exists only when made so on purpose.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiClient } from '../../src/cli/client.ts';
import { createLogger } from '../../src/common/log.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import type { Host } from '../../src/model/host.ts';
import type { EnrollmentRule } from '../../src/model/trust.ts';
import { generateKeyPair, publicKeyB64 } from '../../src/pki/index.ts';
import { stranger } from '../helpers/stranger.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('enrollment rules admit only what a stranger cannot claim', () => {
  const dir = tempDir();
  let ctl: RunningController;
  let api: ApiClient;
  const as = (hostId: string, keys = generateKeyPair()) =>
    stranger({ url: ctl.url, caPem: ctl.trust.ca.certPem, caFingerprint: ctl.trust.ca.fingerprint }, hostId, keys);
  const certificatesOf = async (hostId: string) => (await ctl.store.certificates.list()).filter((c) => c.spec.hostId === hostId);
  const rules = async () => (await api.get<{ items: EnrollmentRule[] }>('/v1/enrollment-rules')).items;

  before(async () => {
    ctl = await startController({
      dataDir: join(dir.path, 'controller'),
      host: '127.0.0.1',
      port: 0,
      log: createLogger('test', { file: join(dir.path, 'controller.log') }),
    });
    api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
  });

  after(async () => {
    await ctl?.close();
    dir.remove();
  });

  test('a labels rule alone is refused at creation; a stranger claiming the labels of a labels+token rule waits for an operator', async () => {
    for (const body of [
      { name: 'rack-1', kind: 'labels', labels: { rack: '1' } },
      { name: 'ids', kind: 'host-ids', hostIds: ['h-aaaaaaaaaaaaaaaa'] },
    ]) {
      const res = await api.raw('POST', '/v1/enrollment-rules', { body });
      assert.equal(res.status, 400, `${body.kind} rule without a token or keys`);
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(error.code, 'unauthenticated_rule');
      assert.match(error.message, /anyone on the network can claim.*withToken.*keyFingerprints.*allowUnauthenticated/);
    }
    assert.deepEqual(await rules(), [], 'a refused rule leaves nothing behind');

    const { token } = await api.post<{ token: string }>('/v1/enrollment-rules', { name: 'rack-1', kind: 'labels', labels: { rack: '1' }, withToken: true });
    // The attack: claim the labels (and guess a token); the stranger gets no certificate, only a place in the queue.
    const claimer = as('h-claims-rack-one');
    assert.equal((await claimer.enroll({ nonce: await claimer.nonce({ labels: { rack: '1' } }) })).status, 202);
    const guesser = as('h-guesses-a-token');
    assert.equal((await guesser.enroll({ nonce: await guesser.nonce({ labels: { rack: '1' } }), bootstrapToken: 'rack-1-token' })).status, 202);
    for (const s of [claimer, guesser]) {
      assert.equal((await api.get<Host>(`/v1/hosts/${s.hostId}`)).status.trust?.state, 'pending');
      assert.deepEqual(await certificatesOf(s.hostId), []);
    }
    // The token without the labels does not match either: the labels narrow the rule.
    const elsewhere = as('h-token-no-labels');
    assert.equal((await elsewhere.enroll({ nonce: await elsewhere.nonce({ labels: { rack: '2' } }), bootstrapToken: token })).status, 202);
    // The host given the token, announcing the labels, is admitted.
    const holder = as('h-holds-the-token');
    const ok = await holder.enroll({ nonce: await holder.nonce({ labels: { rack: '1' } }), bootstrapToken: token });
    assert.equal(ok.status, 201);
    assert.equal((await api.get<Host>(`/v1/hosts/${holder.hostId}`)).status.trust?.approvedBy, 'rule rack-1');
    assert.equal((await rules()).find((r) => r.name === 'rack-1')?.status.uses, 1);
  });

  test('a rule that admits on claims exists only when made so on purpose, and says so; rules of earlier versions admit nobody', async () => {
    const { rule } = await api.post<{ rule: EnrollmentRule }>('/v1/enrollment-rules', {
      name: 'open-zone',
      kind: 'labels',
      labels: { zone: 'z' },
      allowUnauthenticated: true,
    });
    assert.equal(rule.spec.unauthenticated, true);
    assert.equal((await api.get<EnrollmentRule>('/v1/enrollment-rules/open-zone')).spec.unauthenticated, true);
    const anyone = as('h-anyone-in-zone');
    assert.equal((await anyone.enroll({ nonce: await anyone.nonce({ labels: { zone: 'z' } }) })).status, 201, 'what the operator allowed knowingly');
    // A token or keys make allowUnauthenticated meaningless: refused rather than stored as a contradiction.
    const both = await api.raw('POST', '/v1/enrollment-rules', {
      body: { name: 'both', kind: 'labels', labels: { zone: 'y' }, withToken: true, allowUnauthenticated: true },
    });
    assert.equal(both.status, 400);
    await both.arrayBuffer();

    // A rule stored before rules had to authenticate (no token, no keys, not marked) admits nobody now.
    await ctl.store.enrollmentRules.create({
      name: 'old-ids',
      spec: { kind: 'host-ids', hostIds: ['h-listed-long-ago'] },
      status: { phase: 'active', conditions: [], uses: 0, admitted: [] },
    });
    const listed = as('h-listed-long-ago');
    assert.equal((await listed.enroll({ nonce: await listed.nonce() })).status, 202);
    assert.deepEqual(await certificatesOf(listed.hostId), []);
  });

  test('a keys rule admits the host whose key was registered; a stranger squatting its id first neither gets in nor keeps it out', async () => {
    const keys = generateKeyPair();
    const fp = createHash('sha256')
      .update(Buffer.from(publicKeyB64(keys.publicKey), 'base64'))
      .digest('hex');
    // Fingerprints are accepted as 'outrig cluster info' spells CA fingerprints too: sha256: and colons.
    const spelled = `sha256:${fp.match(/../g)!.join(':').toUpperCase()}`;
    const { rule, token } = await api.post<{ rule: EnrollmentRule; token?: string }>('/v1/enrollment-rules', {
      name: 'known-keys',
      kind: 'host-ids',
      hostIds: ['h-known-server-1'],
      keyFingerprints: [spelled],
    });
    assert.deepEqual(rule.spec.keyFingerprints, [fp]);
    assert.equal(token, undefined);
    const bad = await api.raw('POST', '/v1/enrollment-rules', { body: { name: 'bad-keys', kind: 'keys', keyFingerprints: ['not-a-fingerprint'] } });
    assert.equal(bad.status, 400);
    await bad.arrayBuffer();

    const squatter = as('h-known-server-1');
    assert.equal((await squatter.enroll({ nonce: await squatter.nonce(), name: 'db-primary' })).status, 202, 'another key waits for an operator');
    const real = as('h-known-server-1', keys);
    assert.equal((await real.enroll({ nonce: await real.nonce(), name: 'known-1' })).status, 201);
    const h = await api.get<Host>('/v1/hosts/h-known-server-1');
    assert.equal(h.status.trust?.state, 'trusted');
    assert.equal(h.status.trust?.publicKey, publicKeyB64(keys.publicKey));
    assert.equal(h.name, 'known-1', "the squatter's name went with its request");
    // The squatter's next poll proves the wrong key.
    assert.equal((await squatter.enroll({})).status, 403);
  });
});
