/**
 * Issue 17, finding 4: the NBD server capped write bytes in flight per connection (64 MiB) but not
 * over all of them, so one client with several connections (QEMU opens one per queue with
 * multi-conn) could make the host hold any multiple of that in requests waiting for a slow disk;
 * and discards and zero writes, which carry no payload, counted for nothing. The disk here holds
 * every request until the test lets it go (a saturated device, standing in for one this machine's
 * page cache would hide). On 787b6c5 every pipelined request reached the disk at once; now the
 * server stops reading every connection once the total passes its limit (16 MiB here), so at most
 * one request per connection lands past it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkFile } from '../../../src/disk/check.ts';
import { engineDevice } from '../../../src/disk/device.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { NbdClient } from '../../../src/disk/nbd/client.ts';
import { NbdServer, type BlockDevice, type ExportEntry } from '../../../src/disk/nbd/server.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const MiB = 1024 * 1024;

/**
 * A disk served with a 16 MiB budget whose writes, discards and zero writes wait at a gate; `held`
 * weighs each waiting request (`weigh`), `peak` is the most ever held. Runs `body` with `n` clients.
 */
async function withHeldDisk(
  o: { size: number; blockSize?: number; clients: number; weigh: (kind: 'write' | 'other', length: number) => number },
  body: (t: { clients: NbdClient[]; held: () => number; peak: () => number; open: () => void; waiting: () => number }) => Promise<void>,
): Promise<void> {
  const dir = tempDir('outrig-nbd-flight-');
  const file = join(dir.path, 'd.odsk');
  DiskEngine.create(file, { size: o.size, blockSize: o.blockSize });
  const engine = await DiskEngine.open(file);
  let held = 0;
  let peak = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const hold = async (w: number, f: () => Promise<void>) => {
    held += w;
    peak = Math.max(peak, held);
    await gate;
    held -= w;
    return f();
  };
  const base = engineDevice(engine);
  const device: BlockDevice = {
    ...base,
    size: base.size,
    write: (off, d, fua) => hold(o.weigh('write', d.length), () => engine.write(off, d, fua)),
    trim: (off, l, fua) => hold(o.weigh('other', l), () => engine.trim(off, l, fua)),
    writeZeroes: (off, l, fua, nh) => hold(o.weigh('other', l), () => engine.writeZeroes(off, l, fua, nh)),
  };
  const entry: ExportEntry = { name: '', device };
  const server = new NbdServer({ exports: { get: () => entry, list: () => [entry] }, maxTotalInFlightBytes: 16 * MiB });
  const sock = join(dir.path, 's.sock');
  await server.listen(sock);
  const clients = await Promise.all(Array.from({ length: o.clients }, () => NbdClient.connect(sock)));
  // On code without the budget there is none to ask: the test then waits for every request instead.
  const budget = (server as { budget?: { waitingCount: number } }).budget;
  try {
    await body({ clients, held: () => held, peak: () => peak, open, waiting: () => budget?.waitingCount ?? 0 });
  } finally {
    open();
    for (const c of clients) await c.disconnect();
    await server.close();
    await engine.close();
    assert.equal(checkFile(file).clean, true);
    dir.remove();
  }
}

test('write bytes in flight are capped over all connections, with backpressure to each', async () => {
  await withHeldDisk({ size: 256 * MiB, clients: 4, weigh: (kind, l) => (kind === 'write' ? l : 0) }, async (t) => {
    const writes = t.clients.flatMap((c, i) => Array.from({ length: 8 }, (_, k) => c.write((i * 8 + k) * 4 * MiB, Buffer.alloc(4 * MiB, 1 + i * 8 + k))));
    // Until every byte is at the disk (no cap), or every connection has stopped reading (the cap).
    await waitUntil('the writes to settle at the disk', () => t.held() === 128 * MiB || t.waiting() === 4, 60_000, 10);
    assert.ok(t.peak() <= 16 * MiB + 4 * 4 * MiB, `${t.peak() / MiB} MiB of writes held at once`);
    t.open();
    await Promise.all(writes);
    for (const k of [0, 13, 31]) assert.ok((await t.clients[0]!.read(k * 4 * MiB, 4 * MiB)).equals(Buffer.alloc(4 * MiB, 1 + k)), `write ${k} landed`);
  });
});

test('discards and zero writes count for the blocks they touch', async () => {
  // A 4 GiB request touches 65,536 blocks of 64 KiB: 8 MiB of engine work at 128 bytes a block.
  await withHeldDisk({ size: 1024 * 1024 * MiB, blockSize: 64 * 1024, clients: 2, weigh: (kind) => (kind === 'other' ? 1 : 0) }, async (t) => {
    const len = 4 * 1024 * MiB - 64 * 1024;
    const reqs = t.clients.flatMap((c, i) =>
      Array.from({ length: 16 }, (_, k) => (k % 2 ? c.writeZeroes((i * 16 + k) * 4 * 1024 * MiB, len) : c.trim((i * 16 + k) * 4 * 1024 * MiB, len))),
    );
    await waitUntil('the requests to settle at the disk', () => t.held() === 32 || t.waiting() === 2, 60_000, 10);
    // Two fit under the 16 MiB limit, and a connection pauses after the one that passes it.
    assert.ok(t.peak() <= 4, `${t.peak()} requests of 4 GiB held at once`);
    t.open();
    await Promise.all(reqs);
  });
});
