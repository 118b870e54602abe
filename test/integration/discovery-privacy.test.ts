/**
 * What a stranger on the LAN learns from a controller with default settings, over real UDP and
 * HTTPS on loopback: declines are silent (the operator reads why in the controller's log), no UDP
 * answer is larger than its request, and enrollment refusals do not tell known host ids apart.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { httpsRequest } from '../../src/common/https.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import { discoverController } from '../../src/discovery/client.ts';
import { open, seal, type Policy } from '../../src/discovery/messages.ts';
import { createCsr, generateKeyPair, publicKeyB64, type KeyPairPem } from '../../src/pki/index.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

/** A signed discover message of a fresh host, as bytes and with its challenge; `labels` can make it as big as a sender likes. */
function discover(hostId: string, o: { policy?: Policy; labels?: Record<string, string>; keys?: KeyPairPem } = {}): { msg: Buffer; challenge: string } {
  const challenge = randomBytes(16).toString('base64');
  const keys = o.keys ?? generateKeyPair();
  return {
    msg: seal(
      {
        type: 'discover',
        hostId,
        name: hostId,
        publicKey: publicKeyB64(keys.publicKey),
        challenge,
        sentAt: Date.now(),
        policy: o.policy ?? {},
        labels: o.labels ?? {},
      },
      keys.privateKey,
    ),
    challenge,
  };
}

/** Labels that make a discover big enough for any answer. */
const ROOMY = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`pad${i}`, 'x'.repeat(200)]));

describe('what discovery tells a stranger', () => {
  const dir = tempDir();
  const lines: string[] = [];
  let ctl: RunningController;
  let udp: Socket;
  const replies: Buffer[] = [];
  const send = (b: Buffer) => new Promise<void>((r, j) => udp.send(b, ctl.discoveryPort!, '127.0.0.1', (e) => (e ? j(e) : r())));
  const logged = (what: string) => lines.some((l) => l.includes(what));
  const answersTo = (challenge: string) => replies.filter((r) => open(r).body.challenge === challenge).map((r) => r.toString());

  before(async () => {
    ctl = await startController({
      dataDir: join(dir.path, 'controller'),
      host: '127.0.0.1',
      port: 0,
      log: pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) }),
      discovery: { port: 0, address: '127.0.0.1' },
      cluster: { name: 'private-lab', labels: { site: 'hq' } },
    });
    udp = createSocket('udp4');
    udp.on('message', (m) => replies.push(m));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  });

  after(async () => {
    udp?.close();
    await ctl?.close();
    dir.remove();
  });

  test("a discover naming a tenant that does not exist gets silence by default; the controller's log says why", async () => {
    // Room for any answer: silence must not depend on the answer being too big to send.
    const probe = discover('prober', { policy: { dedicatedTo: { tenant: 'nobody' }, cluster: 'private-lab' }, labels: ROOMY });
    await send(probe.msg);
    await waitUntil('an answer or a logged decline', () => answersTo(probe.challenge).length > 0 || logged('tenant=nobody: no such tenant here'), 10_000, 20);
    assert.deepEqual(answersTo(probe.challenge), [], 'the prober hears nothing');
    assert.ok(logged('tenant=nobody: no such tenant here'), 'the operator can read why');
  });

  test("the agent's discover over UDP gets an ack no larger than itself; an unpadded one gets nothing", async () => {
    // A relay between the agent and the controller, measuring both directions.
    const relay = createSocket('udp4');
    await new Promise<void>((r) => relay.bind(0, '127.0.0.1', r));
    const sizes = { request: 0, answer: 0 };
    let agent: RemoteInfo | undefined;
    relay.on('message', (m, from) => {
      if (from.port === ctl.discoveryPort) {
        sizes.answer = m.length;
        relay.send(m, agent!.port, agent!.address);
      } else {
        agent = from;
        sizes.request = m.length;
        relay.send(m, ctl.discoveryPort!, '127.0.0.1');
      }
    });
    try {
      const keys = generateKeyPair();
      const found = await discoverController({
        identity: { hostId: 'measured', name: 'measured', keys },
        policy: {},
        labels: {},
        targets: [`127.0.0.1:${relay.address().port}`],
        onlyTargets: true,
        pinnedCaFingerprint: ctl.trust.ca.fingerprint,
        collectMs: 0,
      });
      const ratio = sizes.answer / sizes.request;
      assert.ok(ratio <= 1, `the ack is ${sizes.answer} bytes for a request of ${sizes.request} (${ratio.toFixed(2)}x)`);
      assert.equal(found.ack.endpoint, ctl.url);
    } finally {
      relay.close();
    }
    // A stranger's bare discover (about 440 bytes), from a source address it may have forged.
    const bare = discover('unpadded');
    await send(bare.msg);
    await waitUntil('an answer or a drop', () => answersTo(bare.challenge).length > 0 || logged('"reason":"unpadded"'), 10_000, 20);
    assert.deepEqual(
      answersTo(bare.challenge).map((a) => `${a.length} bytes to ${bare.msg.length}`),
      [],
    );
  });

  test('an enrollment refusal reads the same for a known host id and an unknown one', async () => {
    // A known host: discovered and waiting for approval with its own key.
    const known = generateKeyPair();
    const d = discover('known-host', { keys: known });
    const ack = await httpsRequest(`${ctl.url}/v1/discover`, {
      method: 'POST',
      body: d.msg,
      headers: { 'content-type': 'application/octet-stream' },
      tls: { ca: ctl.trust.ca.certPem },
    });
    const nonce = (open(ack.body).body as { nonce: string }).nonce;
    const pending = await httpsRequest(`${ctl.url}/v1/enroll`, {
      method: 'POST',
      body: JSON.stringify({ hostId: 'known-host', nonce, csr: await createCsr('known-host', known) }),
      headers: { 'content-type': 'application/json' },
      tls: { ca: ctl.trust.ca.certPem },
    });
    assert.equal(pending.status, 202);

    // A stranger with a key of its own asks for both ids, with a made-up nonce and with none.
    const stranger = generateKeyPair();
    const attempt = async (hostId: string, nonce?: string) => {
      const r = await httpsRequest(`${ctl.url}/v1/enroll`, {
        method: 'POST',
        body: JSON.stringify({ hostId, nonce, csr: await createCsr(hostId, stranger) }),
        headers: { 'content-type': 'application/json' },
        tls: { ca: ctl.trust.ca.certPem },
      });
      return { status: r.status, body: r.body.toString().replaceAll(hostId, '<id>') };
    };
    for (const nonce of ['AAAAAAAAAAAAAAAAAAAAAA==', undefined]) {
      const a = await attempt('known-host', nonce);
      assert.equal(a.status, 403);
      assert.deepEqual(a, await attempt('no-such-host', nonce));
    }
  });
});
