/**
 * `outrig disk serve` (a separate process) against real NBD clients: qemu-io, qemu-img, nbdinfo,
 * nbdcopy.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { DiskEngine } from '../../../src/disk/engine.ts';
import { spawnOutrig, stopDaemon, type Daemon } from '../../helpers/processes.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const run = promisify(execFile);
const SIZE = 64 * 1024 * 1024;

/** A deterministic PRNG so a failing workload can be replayed. */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return s / 2 ** 32;
  };
}

describe('real NBD clients against outrig disk serve', () => {
  const dir = tempDir('outrig-nbd-');
  const disk = join(dir.path, 'vol.odsk');
  const sock = join(dir.path, 'nbd.sock');
  const uri = `nbd+unix:///?socket=${sock}`;
  let server: Daemon;

  before(async () => {
    DiskEngine.create(disk, { size: SIZE });
    const e = await DiskEngine.open(disk);
    await e.write(0, Buffer.alloc(65536, 0x5a));
    await e.createSnapshot('before');
    await e.close();
    server = spawnOutrig(['disk', 'serve', disk, '--socket', sock, '--name', 'vol'], {});
    await waitUntil('server socket', () => existsSync(sock), 15_000);
  });
  after(async () => {
    await stopDaemon(server);
    dir.remove();
  });

  test('nbdinfo lists the export and the advertised features', async () => {
    const { stdout } = await run('nbdinfo', ['--json', uri]);
    const info = JSON.parse(stdout) as { exports: Record<string, unknown>[] };
    const e = info.exports[0]!;
    assert.equal(e['export-size'], SIZE);
    for (const f of ['can_flush', 'can_fua', 'can_trim', 'can_zero', 'can_fast_zero', 'can_multi_conn', 'can_df']) assert.equal(e[f], true, f);
    assert.equal(e['is_read_only'], false);
    assert.deepEqual(e['contexts'], ['base:allocation']);
    assert.equal(e['block_size_preferred'], 65536);
    const list = await run('nbdinfo', ['--list', '--json', uri]);
    const names = (JSON.parse(list.stdout) as { exports: { 'export-name': string }[] }).exports.map((x) => x['export-name']).sort();
    assert.deepEqual(names, ['vol', 'vol@before']);
  });

  test('qemu-io writes random patterns (aligned and not) that read back exactly, identical to a raw copy', async () => {
    const rnd = prng(20261126);
    const cmds: string[] = [];
    const model = Buffer.alloc(SIZE);
    model.fill(0x5a, 0, 65536);
    for (let i = 0; i < 300; i++) {
      const kind = rnd();
      const aligned = rnd() < 0.5;
      let off = Math.floor(rnd() * (SIZE - 300000));
      let len = 1 + Math.floor(rnd() * 200000);
      if (aligned) {
        off -= off % 4096;
        len = Math.max(4096, len - (len % 4096));
      }
      if (kind < 0.8) {
        const p = 1 + Math.floor(rnd() * 254);
        cmds.push(`write -P ${p} ${off} ${len}`);
        model.fill(p, off, off + len);
      } else if (kind < 0.9) {
        cmds.push(`write -z ${off} ${len}`);
        model.fill(0, off, off + len);
      } else {
        // Discard whole 64 KiB blocks so every implementation reads zeros afterwards.
        const o = Math.ceil(off / 65536) * 65536;
        const l = Math.floor(len / 65536) * 65536;
        if (l > 0 && o + l <= SIZE) {
          cmds.push(`discard ${o} ${l}`);
          model.fill(0, o, o + l);
        }
      }
    }
    cmds.push('flush');
    const script = join(dir.path, 'workload.txt');
    writeFileSync(script, cmds.join('\n') + '\n');
    const qio = (target: string, fmt: string) =>
      run('sh', ['-c', `qemu-io -f ${fmt} ${target.includes('nbd') ? `'${target}'` : target} < ${script}`], { maxBuffer: 64 << 20 });
    await qio(uri, 'raw');
    const raw = join(dir.path, 'copy.raw');
    await run('qemu-img', ['create', '-f', 'raw', raw, String(SIZE)]);
    writeFileSync(join(dir.path, 'seed.bin'), Buffer.alloc(65536, 0x5a));
    await run('dd', [`if=${join(dir.path, 'seed.bin')}`, `of=${raw}`, 'conv=notrunc', 'status=none']);
    await qio(raw, 'raw');
    const cmp = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, raw]);
    assert.match(cmp.stdout, /Images are identical/);
    // And byte for byte against the model, through qemu-img convert.
    const out = join(dir.path, 'out.raw');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, out]);
    assert.ok(readFileSync(out).equals(model), 'export content differs from the model');
    // Spot reads with qemu-io's own pattern check.
    const probe = cmds.filter((c) => c.startsWith('write -P')).slice(-5);
    for (const c of probe) {
      const [, , p, off, len] = c.split(' ');
      const expectAll = model.subarray(Number(off), Number(off) + Number(len)).every((x) => x === Number(p));
      if (expectAll) {
        const r = await run('qemu-io', ['-f', 'raw', '-c', `read -P ${p} ${off} ${len}`, uri]);
        assert.doesNotMatch(r.stdout + r.stderr, /Pattern verification failed/);
      }
    }
  });

  test('qemu-img map reports allocation through base:allocation', async () => {
    const { stdout } = await run('qemu-img', ['map', '--output=json', uri]);
    const extents = JSON.parse(stdout) as { start: number; length: number; data: boolean; zero: boolean }[];
    assert.equal(
      extents.reduce((n, x) => n + x.length, 0),
      SIZE,
    );
    assert.ok(extents.some((x) => x.data) && extents.some((x) => !x.data && x.zero));
  });

  test('nbdcopy copies a file in and out unchanged', async () => {
    const src = join(dir.path, 'src.raw');
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    writeFileSync(src, data);
    const ranged = join(dir.path, 'back.raw');
    await run('nbdcopy', [src, uri]);
    await run('nbdcopy', [uri, ranged]);
    assert.ok(readFileSync(ranged).subarray(0, data.length).equals(data));
  });

  test('several clients at once see one disk', async () => {
    await Promise.all(
      [0, 1, 2, 3].map((i) => run('qemu-io', ['-f', 'raw', '-c', `write -P ${0x10 + i} ${(40 << 20) + i * 1048576} 1048576`, '-c', 'flush', uri])),
    );
    const checks = await Promise.all(
      [0, 1, 2, 3].map((i) => run('qemu-io', ['-f', 'raw', '-c', `read -P ${0x10 + i} ${(40 << 20) + i * 1048576} 1048576`, uri])),
    );
    for (const r of checks) assert.doesNotMatch(r.stdout + r.stderr, /Pattern verification failed/);
  });

  test('a snapshot is served read-only as export@snapshot with its old content', async () => {
    const snap = `nbd+unix:///vol@before?socket=${sock}`;
    const r = await run('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x5a 0 65536', snap]);
    assert.doesNotMatch(r.stdout + r.stderr, /Pattern verification failed/);
    await assert.rejects(run('qemu-io', ['-f', 'raw', '-c', 'write -P 1 0 512', snap]), /Operation not permitted|read-only|Permission denied/i);
  });
});
