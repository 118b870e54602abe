import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { chooseAck, verifyAck, type Acknowledged } from '../../../src/discovery/client.ts';
import { DISCOVER_PAD_BYTES, open, padDatagram, seal, type Ack } from '../../../src/discovery/messages.ts';
import { generateKeyPair } from '../../../src/pki/index.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { der, testController, testHost } from './fixtures.ts';

describe('acknowledgements', () => {
  const dir = tempDir();
  after(() => dir.remove());

  test('a supported policy gets a signed ack that verifies, with the CA to pin and where to enroll', async () => {
    const c = await testController(dir.path);
    const h = testHost();
    const { msg, body } = h.discover({ policy: { features: ['kvm'] } });
    const reply = await c.responder.answer(msg);
    assert.ok(reply);
    const got = await verifyAck(reply, { hostId: h.hostId, challenge: body.challenge, pinnedCaFingerprint: c.ca.fingerprint, now: Date.now() });
    assert.equal(got.caFingerprint, c.ca.fingerprint);
    assert.equal(got.ack.endpoint, 'https://127.0.0.1:1');
    assert.equal(got.caCertPem.trim(), c.ca.certPem.trim());
    assert.deepEqual(c.answers, ['ack']);
  });

  test('an unsupported policy gets a decline with reasons, or silence when declines are off', async () => {
    const loud = await testController(dir.path, { answerDeclines: true });
    const h = testHost();
    const reply = await loud.responder.answer(h.discover({ policy: { features: ['gpu'] } }).msg);
    const { body } = open(reply!);
    assert.equal(body.type, 'decline');
    assert.match((body as { reasons: string[] }).reasons[0]!, /feature:gpu/);
    const quiet = await testController(dir.path, { answerDeclines: false });
    assert.equal(await quiet.responder.answer(h.discover({ policy: { features: ['gpu'] } }).msg), null);
  });

  test('a forged ack (signed by a key that is not the controller certificate key) is refused', async () => {
    const c = await testController(dir.path);
    const h = testHost();
    const { msg, body } = h.discover();
    const real = open((await c.responder.answer(msg))!).body as Ack;
    const forged = seal({ ...real, endpoint: 'https://203.0.113.9:7440' }, generateKeyPair().privateKey);
    await assert.rejects(verifyAck(forged, { hostId: h.hostId, challenge: body.challenge, now: Date.now() }), /signature does not verify/);
    // Tampering with the signed body after the fact is caught the same way.
    const again = h.discover();
    const env = JSON.parse((await c.responder.answer(again.msg))!.toString()) as { v: number; body: string; sig: string };
    env.body = env.body.replace('https://127.0.0.1:1', 'https://203.0.113.9:1');
    await assert.rejects(
      verifyAck(Buffer.from(JSON.stringify(env)), { hostId: h.hostId, challenge: again.body.challenge, now: Date.now() }),
      /signature does not verify/,
    );
  });

  test('an ack whose controller certificate is not from the CA in it, or not the pinned CA, is refused', async () => {
    const a = await testController(dir.path);
    const b = await testController(dir.path);
    const h = testHost();
    const { msg, body } = h.discover();
    const ack = open((await a.responder.answer(msg))!).body as Ack;
    // Controller b's node certificate and key, claiming a's CA.
    const mixed = seal({ ...ack, nodeCert: b.nodeCertDer.toString('base64') }, b.nodeKey);
    await assert.rejects(verifyAck(mixed, { hostId: h.hostId, challenge: body.challenge, now: Date.now() }), /not issued by the CA in the ack/);
    const genuine = seal(ack, a.nodeKey);
    await assert.rejects(
      verifyAck(genuine, { hostId: h.hostId, challenge: body.challenge, pinnedCaFingerprint: b.ca.fingerprint, now: Date.now() }),
      /not the pinned one/,
    );
    await assert.doesNotReject(
      verifyAck(genuine, { hostId: h.hostId, challenge: body.challenge, pinnedCaFingerprint: `sha256:${a.ca.fingerprint.toUpperCase()}`, now: Date.now() }),
    );
  });

  test("an ack signed by a certificate of the cluster's own CA that is not a controller's (a host, an operator, a port authenticator, a principal) is refused", async () => {
    const c = await testController(dir.path);
    const h = testHost();
    const { msg, body } = h.discover();
    const ack = open((await c.responder.answer(msg))!).body as Ack;
    const issuers = [
      (k: string) => c.ca.issue('host', { name: 'enrolled-host' }, k, 1),
      (k: string) => c.ca.issue('operator', { name: 'ops' }, k, 1),
      (k: string) => c.ca.issue('authenticator', { name: 'radius', dnsNames: ['radius'] }, k, 1),
      (k: string) => c.ca.issue('principal', { name: 'enrolled-host', hostId: 'enrolled-host', segments: [100] }, k, 1),
    ];
    for (const issue of issuers) {
      const keys = generateKeyPair();
      const cert = await issue(keys.publicKey);
      // An enrolled machine answering discovery with its own certificate, pointing hosts at itself.
      const rogue = seal({ ...ack, nodeCert: der(cert.pem).toString('base64') }, keys.privateKey);
      await assert.rejects(
        verifyAck(rogue, { hostId: h.hostId, challenge: body.challenge, pinnedCaFingerprint: c.ca.fingerprint, now: Date.now() }),
        /not a controller's/,
      );
    }
  });

  test('a replayed ack (an earlier round, another host, or stale) is refused', async () => {
    const c = await testController(dir.path);
    const h = testHost();
    const first = h.discover();
    const old = (await c.responder.answer(first.msg))!;
    const second = h.discover();
    await assert.rejects(verifyAck(old, { hostId: h.hostId, challenge: second.body.challenge, now: Date.now() }), /does not answer our current challenge/);
    await assert.rejects(verifyAck(old, { hostId: 'host-2', challenge: first.body.challenge, now: Date.now() }), /ack is for host host-1/);
    await assert.rejects(verifyAck(old, { hostId: h.hostId, challenge: first.body.challenge, now: Date.now() + 6 * 60_000 }), /stale/);
  });

  test('an ack tells a stranger only what an agent needs to verify it and enroll: no name, version, host count, cluster or features', async () => {
    const c = await testController(dir.path, { caps: { cluster: 'secret-cluster', version: '7.7.7', features: ['secret-feature'] } });
    const h = testHost();
    const env = JSON.parse((await c.responder.answer(h.discover().msg))!.toString()) as { body: string };
    assert.deepEqual(Object.keys(JSON.parse(env.body) as object).sort(), ['caCert', 'challenge', 'endpoint', 'hostId', 'nodeCert', 'nonce', 'sentAt', 'type']);
    assert.doesNotMatch(env.body, /secret-cluster|7\.7\.7|secret-feature|hosts/);
  });

  test('no answer is larger than the request it answers: an ack or decline that would be is dropped, before a nonce is issued', async () => {
    const c = await testController(dir.path, { answerDeclines: true });
    const h = testHost();
    const bare = h.discover().msg;
    assert.equal(await c.responder.answer(bare, '10.0.0.1', bare.length), null);
    assert.equal(await c.responder.answer(h.discover({ policy: { features: ['gpu'] } }).msg, '10.0.0.1', bare.length), null);
    assert.deepEqual(c.drops, ['unpadded', 'unpadded']);
    assert.equal(c.nonces(), 0);
    for (const policy of [{}, { features: ['gpu'] }]) {
      const padded = padDatagram(h.discover({ policy }).msg, DISCOVER_PAD_BYTES);
      const reply = await c.responder.answer(padded, '10.0.0.1', padded.length);
      assert.ok(reply && reply.length <= padded.length, `an answer of ${reply?.length} bytes to ${padded.length}`);
    }
    assert.deepEqual(c.answers, ['ack', 'decline']);
  });

  test('the responder drops a replayed discover message and counts it', async () => {
    const c = await testController(dir.path);
    const { msg } = testHost().discover();
    assert.ok(await c.responder.answer(msg));
    assert.equal(await c.responder.answer(msg), null);
    assert.deepEqual(c.drops, ['replayed']);
  });

  test('a discover message that is stale, signed by another key, or from the future is dropped', async () => {
    const c = await testController(dir.path);
    const h = testHost();
    assert.equal(await c.responder.answer(h.discover({ sentAt: Date.now() - 10 * 60_000 }).msg), null);
    assert.equal(await c.responder.answer(h.discover({ sentAt: Date.now() + 10 * 60_000 }).msg), null);
    const { body } = h.discover();
    assert.equal(await c.responder.answer(seal(body, generateKeyPair().privateKey)), null);
    assert.deepEqual(c.drops, ['stale', 'stale', 'signature']);
  });

  test('one source sending faster than the rate limit is cut off; others are not', async () => {
    let t = 1_000_000;
    const c = await testController(dir.path, { ratePerSource: 5, now: () => t });
    const h = testHost();
    let answered = 0;
    for (let i = 0; i < 20; i++) if (await c.responder.answer(h.discover({ sentAt: t }).msg, '10.0.0.1')) answered++;
    assert.equal(answered, 10, 'a burst of twice the rate');
    assert.ok(await c.responder.answer(h.discover({ sentAt: t }).msg, '10.0.0.2'));
    t += 1000;
    assert.ok(await c.responder.answer(h.discover({ sentAt: t }).msg, '10.0.0.1'), 'refilled after a second');
  });
});

test('among several valid acks the agent takes the first to arrive: what an ack claims about itself (once, its host count) never decides', () => {
  // A rogue answering second and claiming an empty controller (the old choice favoured the fewest hosts).
  const ack = (id: string, hosts: number, at: number) => ({ id, acked: { ack: { controller: { id, hosts } } } as unknown as Acknowledged, at });
  assert.equal(chooseAck([ack('genuine', 40, 1), ack('rogue', 0, 2)]).id, 'genuine');
  assert.equal(chooseAck([ack('b', 1, 3), ack('a', 9, 2), ack('c', 0, 2)]).id, 'a', 'the earliest; the first listed among equals');
  assert.throws(() => chooseAck([]), /no acknowledgement/);
});
