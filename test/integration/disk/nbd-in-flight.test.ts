/**
 * Issue 17, finding 4: the NBD server capped write bytes in flight per connection (64 MiB) but not
 * over all of them, so one client with several connections (QEMU opens one per queue with
 * multi-conn) could make the host hold any multiple of that in requests waiting for a slow disk.
 * Four connections each pipeline 32 MiB of writes at a disk that holds every write until the test
 * lets it go (a saturated device, standing in for one this machine's page cache would hide). On
 * 787b6c5 all 128 MiB reached the disk at once; now the server stops reading every connection once
 * the total passes its limit (16 MiB here), so at most one request per connection lands past it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkFile } from '../../../src/disk/check.ts';
import { engineDevice } from '../../../src/disk/device.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { NbdClient } from '../../../src/disk/nbd/client.ts';
import { NbdServer, type ExportEntry } from '../../../src/disk/nbd/server.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const MiB = 1024 * 1024;

test('write bytes in flight are capped over all connections, with backpressure to each', async () => {
  const dir = tempDir('outrig-nbd-flight-');
  const file = join(dir.path, 'd.odsk');
  DiskEngine.create(file, { size: 256 * MiB });
  const engine = await DiskEngine.open(file);
  let held = 0;
  let peak = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const base = engineDevice(engine);
  const device = {
    ...base,
    size: base.size,
    write: async (o: number, d: Buffer, fua: boolean) => {
      held += d.length;
      peak = Math.max(peak, held);
      await gate;
      held -= d.length;
      return engine.write(o, d, fua);
    },
  };
  const entry: ExportEntry = { name: '', device };
  const server = new NbdServer({ exports: { get: () => entry, list: () => [entry] }, maxTotalInFlightBytes: 16 * MiB });
  const sock = join(dir.path, 's.sock');
  await server.listen(sock);
  const clients = await Promise.all([0, 1, 2, 3].map(() => NbdClient.connect(sock)));
  try {
    const writes = clients.flatMap((c, i) => Array.from({ length: 8 }, (_, k) => c.write((i * 8 + k) * 4 * MiB, Buffer.alloc(4 * MiB, 1 + i * 8 + k))));
    // Until every byte is at the disk (no cap), or every connection has stopped reading (the cap).
    const budget = (server as { budget?: { waitingCount: number } }).budget;
    await waitUntil('the writes to settle at the disk', () => held === 128 * MiB || (budget?.waitingCount ?? 0) === 4, 60_000, 10);
    assert.ok(peak <= 16 * MiB + 4 * 4 * MiB, `${peak / MiB} MiB of writes held at once`);
    open();
    await Promise.all(writes);
    for (const k of [0, 13, 31]) assert.ok((await clients[0]!.read(k * 4 * MiB, 4 * MiB)).equals(Buffer.alloc(4 * MiB, 1 + k)), `write ${k} landed`);
  } finally {
    open();
    for (const c of clients) await c.disconnect();
    await server.close();
    await engine.close();
    assert.equal(checkFile(file).clean, true);
    dir.remove();
  }
});

// Discards and zero writes carry no payload, so on 787b6c5 they counted for nothing: a client could
// pipeline any number of 4 GiB discards, each a piece of engine work per block (65,536 here).
test('discards and zero writes count for the blocks they touch', async () => {
  const dir = tempDir('outrig-nbd-flight-');
  const file = join(dir.path, 'd.odsk');
  DiskEngine.create(file, { size: 1024 * 1024 * MiB, blockSize: 64 * 1024 });
  const engine = await DiskEngine.open(file);
  let held = 0;
  let peak = 0;
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const base = engineDevice(engine);
  const hold = async <T>(f: () => Promise<T>) => {
    held++;
    peak = Math.max(peak, held);
    await gate;
    held--;
    return f();
  };
  const device = { ...base, size: base.size, trim: (o: number, l: number, fua: boolean) => hold(() => engine.trim(o, l, fua)), writeZeroes: (o: number, l: number, fua: boolean, nh: boolean) => hold(() => engine.writeZeroes(o, l, fua, nh)) };
  const entry: ExportEntry = { name: '', device };
  const server = new NbdServer({ exports: { get: () => entry, list: () => [entry] }, maxTotalInFlightBytes: 16 * MiB });
  const sock = join(dir.path, 's.sock');
  await server.listen(sock);
  const clients = await Promise.all([0, 1].map(() => NbdClient.connect(sock)));
  try {
    const GiB4 = 4 * 1024 * MiB - 64 * 1024;
    const reqs = clients.flatMap((c, i) => Array.from({ length: 16 }, (_, k) => (k % 2 ? c.writeZeroes((i * 16 + k) * 4 * 1024 * MiB, GiB4) : c.trim((i * 16 + k) * 4 * 1024 * MiB, GiB4))));
    const budget = (server as { budget?: { waitingCount: number } }).budget;
    await waitUntil('the requests to settle at the disk', () => held === 32 || (budget?.waitingCount ?? 0) === 2, 60_000, 10);
    // Each weighs 8 MiB: two fit under the 16 MiB limit, and a connection pauses after the one that passes it.
    assert.ok(peak <= 4, `${peak} requests of 4 GiB held at once`);
    open();
    await Promise.all(reqs);
  } finally {
    open();
    for (const c of clients) await c.disconnect();
    await server.close();
    await engine.close();
    dir.remove();
  }
});
