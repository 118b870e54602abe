/**
 * The engine against a byte-array model: random writes (aligned or not, batched concurrently),
 * zeroes, trims, flushes, snapshots, reopens and resizes; every read must match the model, and
 * the file must check clean.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { checkFile } from '../../../src/disk/check.ts';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { readLayer } from '../../../src/disk/layer.ts';
import { tempDir } from '../../helpers/tmp.ts';

type Step =
  | { t: 'write'; batch: { off: number; len: number }[] }
  | { t: 'zero'; off: number; len: number }
  | { t: 'trim'; off: number; len: number }
  | { t: 'flush' }
  | { t: 'snap' }
  | { t: 'delsnap'; i: number }
  | { t: 'reopen' };

function arbRange(size: number) {
  return fc.tuple(fc.nat(size - 1), fc.integer({ min: 1, max: 40000 })).map(([off, len]) => ({ off, len: Math.min(len, size - off) }));
}

function arbStep(size: number): fc.Arbitrary<Step> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(arbRange(size), { minLength: 1, maxLength: 6 }).map((batch) => ({ t: 'write' as const, batch })) },
    { weight: 2, arbitrary: arbRange(size).map((r) => ({ t: 'zero' as const, ...r })) },
    { weight: 2, arbitrary: arbRange(size).map((r) => ({ t: 'trim' as const, ...r })) },
    { weight: 1, arbitrary: fc.constant({ t: 'flush' as const }) },
    { weight: 1, arbitrary: fc.constant({ t: 'snap' as const }) },
    { weight: 1, arbitrary: fc.nat(5).map((i) => ({ t: 'delsnap' as const, i })) },
    { weight: 1, arbitrary: fc.constant({ t: 'reopen' as const }) },
  );
}

async function runModel(blockSize: number, steps: Step[], cache: 'writeback' | 'writethrough') {
  const dir = tempDir('outrig-engine-');
  const file = join(dir.path, 'd.odsk');
  const size = 1024 * 1024;
  const B = blockSize;
  try {
    // A small journal makes checkpoints and wrap-around happen often.
    DiskEngine.create(file, { size, blockSize, journalSize: 64 * 1024 });
    let e = await DiskEngine.open(file, { cache });
    const model = Buffer.alloc(size);
    const snaps: { name: string; data: Buffer }[] = [];
    let n = 0;
    for (const s of steps) {
      switch (s.t) {
        case 'write': {
          const datas = s.batch.map((r) => randomBytes(r.len));
          await Promise.all(s.batch.map((r, i) => e.write(r.off, datas[i]!)));
          s.batch.forEach((r, i) => datas[i]!.copy(model, r.off));
          break;
        }
        case 'zero':
          await e.writeZeroes(s.off, s.len);
          model.fill(0, s.off, s.off + s.len);
          break;
        case 'trim': {
          await e.trim(s.off, s.len);
          // The engine discards whole blocks only; a partial trim is a no-op hint.
          const first = Math.ceil(s.off / B) * B;
          const last = Math.floor((s.off + s.len) / B) * B;
          if (last > first) model.fill(0, first, last);
          break;
        }
        case 'flush':
          await e.flush();
          break;
        case 'snap': {
          const name = `s${n++}`;
          await e.createSnapshot(name);
          snaps.push({ name, data: Buffer.from(model) });
          break;
        }
        case 'delsnap':
          if (snaps.length) {
            const [gone] = snaps.splice(s.i % snaps.length, 1);
            await e.deleteSnapshot(gone!.name);
          }
          break;
        case 'reopen':
          await e.close();
          e = await DiskEngine.open(file, { cache });
          break;
      }
      assert.ok(e.readBuffer(0, size).equals(model), `disk differs from the model after ${JSON.stringify(s).slice(0, 80)}`);
    }
    for (const sn of snaps) {
      const got = Buffer.alloc(size);
      for (const seg of readLayer(e.snapshotLayer(sn.name), 0, size)) if (seg.data) seg.data.copy(got, seg.offset);
      assert.ok(got.equals(sn.data), `snapshot ${sn.name} changed`);
    }
    await e.close();
    const r = checkFile(file);
    assert.equal(r.clean, true, JSON.stringify(r.findings));
    assert.ok(!r.findings.some((f) => f.severity === 'warning'), JSON.stringify(r.findings));
    const again = await DiskEngine.open(file, { readOnly: true });
    assert.ok(again.readBuffer(0, size).equals(model), 'disk differs from the model after the final reopen');
    await again.close();
  } finally {
    dir.remove();
  }
}

for (const [B, cache] of [
  [4096, 'writeback'],
  [65536, 'writethrough'],
  [65536, 'writeback'],
] as const) {
  test(`engine matches a byte model (${B / 1024} KiB blocks, ${cache})`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbStep(1024 * 1024), { minLength: 5, maxLength: 40 }), (steps) => runModel(B, steps, cache)),
      { numRuns: 15 },
    );
  });
}

test('a clone reads its backing snapshot until written, and shares its space', async () => {
  const dir = tempDir('outrig-clone-');
  try {
    const base = join(dir.path, 'base.odsk');
    DiskEngine.create(base, { size: 4 << 20 });
    const b = await DiskEngine.open(base);
    await b.write(0, Buffer.alloc(200000, 0x11));
    await b.createSnapshot('gold');
    await b.write(0, Buffer.alloc(1000, 0x22)); // after the snapshot: clones must not see it
    const clonePath = join(dir.path, 'clone.odsk');
    DiskEngine.create(clonePath, { size: 0, backing: { path: base, snapshot: 'gold' } });
    const c = await DiskEngine.open(clonePath);
    assert.equal(c.virtualSize, 4 << 20);
    assert.ok(c.readBuffer(0, 200000).equals(Buffer.alloc(200000, 0x11)));
    assert.equal(c.info().mappedBlocks, 0, 'nothing copied yet');
    await c.write(70000, Buffer.from('clone'));
    const want = Buffer.alloc(200000, 0x11);
    want.write('clone', 70000);
    assert.ok(c.readBuffer(0, 200000).equals(want));
    assert.equal(c.info().mappedBlocks, 1, 'one block copied on write');
    await c.writeZeroes(0, 65536);
    assert.ok(c.readBuffer(0, 65536).equals(Buffer.alloc(65536)), 'zeroed block does not fall through to the backing disk');
    assert.deepEqual(
      c.status(0, 196608).map((x) => x.hole),
      [true, false],
    );
    await c.close();
    await b.close();
    const reopened = await DiskEngine.open(clonePath, { readOnly: true });
    assert.ok(reopened.readBuffer(65536, 134464).equals(want.subarray(65536)));
    await reopened.close();
    assert.equal(checkFile(clonePath).clean, true);
  } finally {
    dir.remove();
  }
});

// Issue 17, finding 5: the lock file was made after a look for it (exists, then write), so two
// openers between the two both got the disk.
test('of writers racing to open one disk, exactly one gets it', async () => {
  const dir = tempDir();
  try {
    const f = join(dir.path, 'd.odsk');
    DiskEngine.create(f, { size: 1 << 20 });
    const { spawn } = await import('node:child_process');
    const engine = new URL('../../../src/disk/engine.ts', import.meta.url).pathname;
    // Round 0 races over no lock; round 1 over the dead winner's lock (a takeover race).
    for (let round = 0; round < 2; round++) {
      const start = Date.now() + 2500;
      // Each writer waits for the same moment, opens, says how it went, and holds the disk a while.
      const script = `const m = await import('${engine}'); while (Date.now() < ${start}); try { await m.DiskEngine.open('${f}'); console.log('got it'); } catch (e) { console.log(e.message); } await new Promise((r) => setTimeout(r, 1500));`;
      const outs = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<string>((resolve) => {
              const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
              let out = '';
              p.stdout.on('data', (d: Buffer) => (out += d.toString()));
              p.on('close', () => resolve(out.trim()));
            }),
        ),
      );
      assert.equal(outs.filter((o) => o === 'got it').length, 1, `round ${round}: ${outs.join(' | ')}`);
      assert.ok(
        outs.filter((o) => o !== 'got it').every((o) => /in use by process \d+/.test(o)),
        outs.join(' | '),
      );
    }
  } finally {
    dir.remove();
  }
});

test('a second writer is refused while the first has the disk open', async () => {
  const dir = tempDir();
  try {
    const f = join(dir.path, 'd.odsk');
    DiskEngine.create(f, { size: 1 << 20 });
    const a = await DiskEngine.open(f);
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [
      '--import',
      'tsx',
      '-e',
      `import('${new URL('../../../src/disk/engine.ts', import.meta.url).pathname}').then(m => m.DiskEngine.open('${f}')).then(() => process.exit(0), e => { console.error(e.message); process.exit(3); })`,
    ]);
    assert.equal(r.status, 3);
    assert.match(r.stderr.toString(), /in use by process \d+/);
    await a.close();
  } finally {
    dir.remove();
  }
});
