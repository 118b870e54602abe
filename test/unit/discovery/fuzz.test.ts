/**
 * Property test: whatever bytes arrive, the responder never throws and answers nothing that is
 * not a well-formed, correctly signed, fresh, first-seen discover message; every drop is counted.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, describe, test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { DISCOVER_PAD_BYTES, MAX_DATAGRAM, padDatagram, seal } from '../../../src/discovery/messages.ts';
import { generateKeyPair } from '../../../src/pki/index.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';
import { testController, testHost } from './fixtures.ts';

const RUNS = 300;

describe('discovery responder under malformed input', () => {
  const dir = tempDir();
  after(() => dir.remove());
  const host = testHost();
  const valid = host.discover();
  const validEnv = JSON.parse(valid.msg.toString()) as { v: number; body: string; sig: string };
  const otherKey = generateKeyPair().privateKey;

  const anyJson = fc.jsonValue({ maxDepth: 3 });
  const datagrams = fc.oneof(
    fc.uint8Array({ maxLength: 2048 }).map((a) => Buffer.from(a)),
    fc.integer({ min: 0, max: valid.msg.length - 1 }).map((n) => valid.msg.subarray(0, n)),
    fc.integer({ min: MAX_DATAGRAM + 1, max: 200_000 }).map((n) => Buffer.alloc(n, 0x7b)),
    fc.record({ v: anyJson, body: anyJson, sig: anyJson }, { requiredKeys: [] }).map((e) => Buffer.from(JSON.stringify(e))),
    fc.record({ body: anyJson, sig: fc.base64String() }).map((e) => Buffer.from(JSON.stringify({ v: 1, body: JSON.stringify(e.body), sig: e.sig }))),
    // A real body with one field replaced by anything: wrong types, missing fields, extra fields.
    fc
      .tuple(fc.constantFrom(...Object.keys(valid.body), 'extra'), anyJson)
      .map(([k, v]) => JSON.stringify({ ...valid.body, [k]: v }))
      .filter((body) => body !== validEnv.body)
      .map((body) => Buffer.from(JSON.stringify({ v: 1, body, sig: validEnv.sig }))),
    // Well-formed but signed by another key, or with the signature bytes flipped.
    fc.constant(0).map(() => seal({ ...host.discover().body }, otherKey)),
    fc.uint8Array({ minLength: 64, maxLength: 72 }).map((sig) => Buffer.from(JSON.stringify({ ...validEnv, sig: Buffer.from(sig).toString('base64') }))),
    fc.constantFrom(2, 0, -1, '1', null).map((v) => Buffer.from(JSON.stringify({ ...validEnv, v }))),
  );

  test('never throws, never answers, counts every drop', async () => {
    const c = await testController(dir.path, { ratePerSource: 1e9 });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(datagrams, async (d) => {
        n++;
        const before = c.drops.length;
        const reply = await c.responder.answer(d);
        assert.equal(reply, null, `answered ${d.subarray(0, 120).toString()}`);
        assert.equal(c.drops.length, before + 1, 'the drop is counted');
      }),
      { numRuns: RUNS },
    );
    assert.equal(n, RUNS);
    assert.deepEqual(c.answers, []);
    // Still healthy: a genuine message is answered.
    assert.ok(await c.responder.answer(valid.msg));
  });

  test('over UDP: garbage gets no reply, and a genuine discover right after it does', async () => {
    const c = await testController(dir.path, { ratePerSource: 1e9 });
    const port = await c.responder.start();
    const sock = createSocket('udp4');
    const replies: Buffer[] = [];
    sock.on('message', (m) => replies.push(m));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const samples = fc.sample(
        datagrams.filter((d) => d.length <= 65_000),
        200,
      );
      for (const [i, d] of samples.entries()) {
        await new Promise<void>((r, j) => sock.send(d, port, '127.0.0.1', (e) => (e ? j(e) : r())));
        // One at a time: a flood would overflow the socket buffer, and the kernel, not the responder, would drop them.
        await waitUntil('the datagram to be handled', () => c.drops.length === i + 1, 5000, 1);
      }
      // The genuine message goes last, padded as agents send it; when its answer is in, every earlier datagram has been handled.
      await new Promise<void>((r, j) => sock.send(padDatagram(host.discover().msg, DISCOVER_PAD_BYTES), port, '127.0.0.1', (e) => (e ? j(e) : r())));
      const deadline = Date.now() + 10_000;
      while (!replies.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(
        replies.length,
        1,
        `exactly one reply: to the genuine message (answers ${c.answers.join()}, drops ${c.drops.length}/${samples.length}: ${[...new Set(c.drops)].join()})`,
      );
      assert.equal(c.drops.length, samples.length);
    } finally {
      sock.close();
      c.responder.close();
    }
  });
});
