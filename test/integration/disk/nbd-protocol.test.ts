/**
 * Bad input against the NBD server: malformed handshakes, requests past the end, oversized
 * lengths, unknown commands and flags, clients that vanish mid-request, and random byte streams.
 * Each gets an error reply or a closed connection, never a crash or a hang, and the disk stays
 * consistent and usable.
 */
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { checkFile } from '../../../src/disk/check.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { NbdClient, NbdRequestError } from '../../../src/disk/nbd/client.ts';
import * as P from '../../../src/disk/nbd/protocol.ts';
import { DiskExports } from '../../../src/disk/serve.ts';
import { NbdServer } from '../../../src/disk/nbd/server.ts';
import { tempDir } from '../../helpers/tmp.ts';

const SIZE = 8 << 20;

function raw(path: string): Promise<{ sock: Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => undefined);
    sock.once('connect', () => resolve({ sock, received: () => Buffer.concat(chunks), closed }));
    sock.once('error', reject);
  });
}

function option(opt: number, data: Buffer, magic = P.IHAVEOPT): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(magic, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

const clientFlags = (f = P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(f, 0);
  return b;
};

/** Reads option replies out of what the server sent after the 18-byte greeting. */
function optionReplies(buf: Buffer): { opt: number; type: number; data: Buffer }[] {
  const out = [];
  let off = 18;
  while (off + 20 <= buf.length) {
    const len = buf.readUInt32BE(off + 16);
    out.push({ opt: buf.readUInt32BE(off + 8), type: buf.readUInt32BE(off + 12), data: buf.subarray(off + 20, off + 20 + len) });
    off += 20 + len;
  }
  return out;
}

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('NBD server under bad input', () => {
  const dir = tempDir('outrig-nbd-proto-');
  const file = join(dir.path, 'd.odsk');
  const sock = join(dir.path, 's.sock');
  let engine: DiskEngine;
  let server: NbdServer;

  before(async () => {
    DiskEngine.create(file, { size: SIZE, journalSize: 128 * 1024 });
    engine = await DiskEngine.open(file);
    const exports = new DiskExports();
    exports.add('d', engine);
    server = new NbdServer({ exports });
    await server.listen(sock);
  });
  after(async () => {
    await server.close();
    await engine.close();
    assert.equal(checkFile(file).clean, true);
    dir.remove();
  });

  test('unknown client flags close the connection', async () => {
    const c = await raw(sock);
    c.sock.write(clientFlags(0x80));
    await c.closed;
  });

  test('unknown options get NBD_REP_ERR_UNSUP and haggling goes on; LIST and INFO answer; ABORT acks', async () => {
    const c = await raw(sock);
    const name = Buffer.from('nope');
    const info = Buffer.alloc(4 + name.length + 2);
    info.writeUInt32BE(name.length, 0);
    name.copy(info, 4);
    c.sock.write(
      Buffer.concat([
        clientFlags(),
        option(99, Buffer.alloc(3)),
        option(P.OPT_LIST, Buffer.alloc(0)),
        option(P.OPT_INFO, info),
        option(P.OPT_LIST, Buffer.alloc(1)),
        option(P.OPT_STARTTLS, Buffer.alloc(0)),
        option(P.OPT_ABORT, Buffer.alloc(0)),
      ]),
    );
    await c.closed;
    const r = optionReplies(c.received());
    assert.deepEqual(
      r.map((x) => [x.opt, x.type >>> 0]),
      [
        [99, P.REP_ERR_UNSUP],
        [P.OPT_LIST, P.REP_SERVER],
        [P.OPT_LIST, P.REP_ACK],
        [P.OPT_INFO, P.REP_ERR_UNKNOWN],
        [P.OPT_LIST, P.REP_ERR_INVALID],
        [P.OPT_STARTTLS, P.REP_ERR_POLICY],
        [P.OPT_ABORT, P.REP_ACK],
      ],
    );
  });

  test('an oversized option, a bad option magic, or an unknown EXPORT_NAME end the session', async () => {
    for (const bytes of [
      option(P.OPT_LIST, Buffer.alloc(P.MAX_OPTION + 1)),
      option(P.OPT_LIST, Buffer.alloc(0), 0x1234n),
      option(P.OPT_EXPORT_NAME, Buffer.from('missing')),
    ]) {
      const c = await raw(sock);
      c.sock.write(Buffer.concat([clientFlags(), bytes]));
      await c.closed;
    }
  });

  test('bad requests get errors and the connection keeps working', async () => {
    const c = await NbdClient.connect(sock, 'd');
    const errno = async (p: Promise<unknown>) => {
      try {
        await p;
        return 0;
      } catch (e) {
        return (e as NbdRequestError).errno;
      }
    };
    assert.equal(await errno(c.read(SIZE - 10, 20)), P.EINVAL);
    assert.equal(await errno(c.write(SIZE - 10, Buffer.alloc(20))), P.ENOSPC);
    assert.equal(await errno(c.raw(42, 0, 0, 0)), P.EINVAL);
    assert.equal(await errno(c.raw(P.CMD_READ, 1 << 9, 0, 512)), P.EINVAL, 'unknown flag');
    assert.equal(await errno(c.raw(P.CMD_READ, P.CMD_FLAG_REQ_ONE, 0, 512)), P.EINVAL, 'flag of another command');
    assert.equal(await errno(c.raw(P.CMD_READ, 0, 0, P.MAX_PAYLOAD + 1)), P.EINVAL);
    assert.equal(await errno(c.raw(P.CMD_CACHE, 0, 0, 512)), P.EINVAL, 'CACHE is not offered');
    assert.equal(await errno(c.raw(P.CMD_FLUSH, 0, 5, 0)), P.EINVAL);
    assert.equal(await errno(c.raw(P.CMD_READ, 0, Number.MAX_SAFE_INTEGER - 10, 100)), P.EINVAL, 'offset near 2^64 does not wrap');
    // An oversized write payload is drained and refused; the stream stays in step.
    assert.equal(await errno(c.raw(P.CMD_WRITE, 0, 0, P.MAX_PAYLOAD + 4096, Buffer.alloc(P.MAX_PAYLOAD + 4096))), P.EINVAL);
    await c.write(4096, Buffer.from('still fine'));
    assert.equal((await c.read(4096, 10)).toString(), 'still fine');
    assert.deepEqual(await c.blockStatus(0, 65536 * 2, true), [{ length: 65536, flags: 0 }]);
    await c.disconnect();
  });

  test('block status needs a negotiated context; read-only exports refuse writes', async () => {
    const noMeta = await NbdClient.connect(sock, 'd', { meta: false });
    await assert.rejects(noMeta.blockStatus(0, 512), (e: NbdRequestError) => e.errno === P.EINVAL);
    await noMeta.disconnect();
    await engine.createSnapshot('ro');
    const ro = await NbdClient.connect(sock, 'd@ro');
    assert.ok(ro.info.flags & P.TF_READ_ONLY);
    await assert.rejects(ro.write(0, Buffer.alloc(512)), (e: NbdRequestError) => e.errno === P.EPERM);
    await assert.rejects(ro.trim(0, 65536), (e: NbdRequestError) => e.errno === P.EPERM);
    await ro.disconnect();
  });

  test('simple replies (no structured replies negotiated) carry read data', async () => {
    const c = await NbdClient.connect(sock, 'd', { structured: false });
    await c.write(100000, Buffer.from('simple'));
    assert.equal((await c.read(100000, 6)).toString(), 'simple');
    await c.disconnect();
  });

  test('a client that vanishes mid-request leaves the server and the disk fine', async () => {
    const c = await NbdClient.connect(sock, 'd');
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.REQUEST_MAGIC, 0);
    h.writeUInt16BE(P.CMD_WRITE, 6);
    h.writeBigUInt64BE(0n, 16);
    h.writeUInt32BE(65536, 24);
    (c as unknown as { sock: Socket }).sock.write(Buffer.concat([h, Buffer.alloc(1000, 7)]));
    c.destroy();
    const ok = await NbdClient.connect(sock, 'd');
    assert.ok(
      (await ok.read(0, 1000)).every((x) => x !== 7),
      'a partial write is never applied',
    );
    await ok.disconnect();
  });

  test('random bytes after the greeting or after the handshake never crash or hang the server', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 400 }), async (afterHandshake, junk) => {
        const c = await raw(sock);
        const pre = afterHandshake ? Buffer.concat([clientFlags(), option(P.OPT_GO, Buffer.from([0, 0, 0, 1, 0x64, 0, 0]))]) : Buffer.alloc(0);
        c.sock.write(Buffer.concat([pre, Buffer.from(junk)]));
        // Whatever it does with the junk, the server stays up and a real client still works.
        await until('server to digest the junk', () => c.received().length >= 18);
        c.sock.destroy();
        await c.closed;
        const ok = await NbdClient.connect(sock, 'd');
        await ok.write(8192, Buffer.from('alive'));
        assert.equal((await ok.read(8192, 5)).toString(), 'alive');
        await ok.disconnect();
      }),
      { numRuns: 150 },
    );
    await until('every junk connection to be gone', () => server.connections === 0);
  });

  test('well-formed requests with random fields get an answer for each', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            type: fc.integer({ min: 0, max: 12 }),
            flags: fc.integer({ min: 0, max: 0xffff }),
            offset: fc.oneof(fc.nat(SIZE), fc.nat(Number.MAX_SAFE_INTEGER)),
            length: fc.oneof(fc.nat(70000), fc.nat(0xffffffff)),
          }),
          { maxLength: 20 },
        ),
        async (reqs) => {
          const c = await NbdClient.connect(sock, 'd');
          for (const r of reqs) {
            if (r.type === P.CMD_DISC) continue;
            const payload = r.type === P.CMD_WRITE && r.length <= 70000 ? Buffer.alloc(r.length, 3) : undefined;
            if (r.type === P.CMD_WRITE && !payload) continue;
            await c.raw(r.type, r.flags, r.offset, r.length, payload).catch((e: unknown) => assert.ok(e instanceof NbdRequestError, String(e)));
          }
          await c.flush();
          await c.disconnect();
        },
      ),
      { numRuns: 60 },
    );
  });
});
