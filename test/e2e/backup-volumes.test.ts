/**
 * Backups of instances' volumes through the controller, with real VMs (TCG): an instance boots from
 * a partitioned GRUB disk (ext4 root with a known UUID and label, a second ext4 filesystem with
 * data); it is backed up while it runs; its volume is deleted; a bare-metal restore into a new
 * volume boots a new instance, and the rebuilt disk has the same layout, identities and files.
 * And system-state recovery: a broken boot configuration is put back from the backup while user
 * data written after the backup stays.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { readDiskLayout, type DiskLayout } from '../../src/backup/disk-layout.ts';
import { buildTestDisk, type TestDisk } from '../../src/hypervisor/guest-image/test-disk.ts';
import type { Backup } from '../../src/model/backup.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { Volume } from '../../src/model/volume.ts';
import { debugfs, filesOf } from '../helpers/disk-files.ts';
import { waitUntil } from '../helpers/wait.ts';
import { Cluster } from './cluster.ts';

const run = promisify(execFile);
const ROOT_UUID = '5eed0001-aaaa-4bbb-8ccc-000000000001';
const DATA_UUID = '5eed0001-aaaa-4bbb-8ccc-000000000002';

describe('volume backups through the controller', { timeout: 900_000 }, () => {
  const c = new Cluster();
  let disk: TestDisk;
  let layout: DiskLayout;
  const offsets = () => layout.partitions.map((p) => p.start * layout.table.sectorSize);

  before(async () => {
    await c.up();
    const blob = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < blob.length; i += 4) blob.writeUInt32LE((i * 2654435761) >>> 0, i);
    disk = await buildTestDisk(join(c.dir.path, 'machine.raw'), {
      rootUuid: ROOT_UUID,
      data: { sizeMiB: 24, uuid: DATA_UUID, files: { 'data.txt': 'version 1\n', 'docs/readme.txt': 'user data\n', 'blob.bin': blob } },
    });
    layout = await readDiskLayout(disk.path, disk.sizeBytes);
    await c.ok('image', 'import', disk.path, '--name', 'machine', '--ready-marker', disk.readyMarker);
  });
  after(() => c.stop());

  const vol = (ref: string) => c.json<Volume>('volume', 'show', ref);
  /** The volume's disk, read over its host's NBD socket into an image file. */
  const readVolume = async (ref: string, out: string) => {
    await run('nbdcopy', [`nbd+unix:///${(await vol(ref)).id}?socket=${join(c.agentDir, 'diskd', 'nbd.sock')}`, out]);
    return out;
  };
  const writeVolume = async (ref: string, image: string) => {
    await run('nbdcopy', ['--flush', image, `nbd+unix:///${(await vol(ref)).id}?socket=${join(c.agentDir, 'diskd', 'nbd.sock')}`]);
  };
  const consoleOf = async (name: string) => c.serialLog((await c.json<Instance>('instance', 'show', name)).id);

  test('BMR: a running instance is backed up, its volume deleted, and a rebuilt volume boots a new instance with the same disk', async () => {
    await c.ok('volume', 'create', 'web-root', '--image', 'machine');
    await c.ok('instance', 'create', 'web', '--boot-volume', 'web-root', '--ready-marker', disk.readyMarker, '--wait-ready');

    const b = await c.json<Backup>('backup', 'create', '--instance', 'web', '--name', 'web-1', '--tag', 'e2e');
    assert.equal(b.status.phase, 'completed', b.status.message);
    const r = b.status.result!;
    assert.equal(r.bmrReady, true);
    assert.deepEqual(
      r.filesystems.map((f) => [f.partition, f.uuid, f.label]),
      [
        [1, ROOT_UUID, 'outrig-root'],
        [2, DATA_UUID, 'outrig-data'],
      ],
    );
    assert.ok(r.systemState.includes('/p1/boot'));
    assert.equal(b.status.sizeBytes, disk.sizeBytes);
    const listed = await c.cli('backup', 'list');
    assert.match(listed.stdout, /web-1\s+b-\w+\s+completed\s+web-root\s+\w{8}\s+yes/);

    await c.ok('instance', 'delete', 'web', '--force');
    await c.ok('volume', 'delete', 'web-root');
    await waitUntil('the volume gone', async () => !(await c.json<Volume[]>('volume', 'list')).some((v) => v.name === 'web-root'), 60_000);

    const restored = await c.json<Volume>('backup', 'restore', 'web-1', '--volume', 'web-restored');
    assert.equal(restored.status.phase, 'available');
    assert.equal(restored.spec.sizeBytes, disk.sizeBytes);
    assert.deepEqual(restored.spec.source, { backup: b.id });
    await c.ok('instance', 'create', 'web2', '--boot-volume', 'web-restored', '--ready-marker', disk.readyMarker, '--wait-ready');
    assert.match(await consoleOf('web2'), /OUTRIG-GUEST-READY name=web2/);
    await c.ok('instance', 'stop', 'web2');

    const back = await readVolume('web-restored', join(c.dir.path, 'web-restored.raw'));
    const again = await readDiskLayout(back, disk.sizeBytes);
    assert.deepEqual(again.table, layout.table);
    assert.deepEqual(again.partitions, layout.partitions);
    assert.deepEqual(
      again.filesystems.map((f) => [f.partition, f.type, f.uuid, f.label, f.blockSize, f.inodeSize]),
      layout.filesystems.map((f) => [f.partition, f.type, f.uuid, f.label, f.blockSize, f.inodeSize]),
    );
    for (const off of offsets()) assert.deepEqual(filesOf(back, off), filesOf(disk.path, off), `files of the filesystem at ${off}`);
    await run('e2fsck', ['-fn', `${back}?offset=${offsets()[0]}`]);
  });

  test('SSR: a broken boot configuration is restored from the backup; data written after it stays', async () => {
    await c.ok('volume', 'create', 'app-root', '--image', 'machine');
    await c.ok('instance', 'create', 'app', '--boot-volume', 'app-root', '--ready-marker', disk.readyMarker, '--wait-ready');
    await c.ok('backup', 'create', '--volume', 'app-root', '--name', 'app-1');
    await c.ok('instance', 'stop', 'app');

    // After the backup: user data changes on the data filesystem, and GRUB's configuration gets broken.
    const [root, data] = offsets() as [number, number];
    const image = await readVolume('app-root', join(c.dir.path, 'app.raw'));
    const goodCfg = debugfs(image, root, 'cat /boot/grub/grub.cfg');
    writeFileSync(join(c.dir.path, 'v2.txt'), 'version 2, written after the backup\n');
    debugfs(image, data, 'rm /data.txt', true);
    debugfs(image, data, `write ${join(c.dir.path, 'v2.txt')} /data.txt`, true);
    writeFileSync(join(c.dir.path, 'broken.cfg'), 'this is not a grub configuration\n');
    debugfs(image, root, 'rm /boot/grub/grub.cfg', true);
    debugfs(image, root, `write ${join(c.dir.path, 'broken.cfg')} /boot/grub/grub.cfg`, true);
    await writeVolume('app-root', image);

    await c.ok('instance', 'start', 'app');
    await waitUntil('GRUB to give up on the broken configuration', async () => /can't find command|grub>/.test(await consoleOf('app')), 120_000);
    const refused = await c.cli('backup', 'restore', 'app-1', '--volume', 'app-root', '--system-state');
    assert.equal(refused.code, 1, 'refused while the instance runs');
    assert.match(refused.stderr, /in use by instance app; stop it first/);
    await c.ok('instance', 'stop', 'app');

    const ssr = await c.json<{ restored: string[] }>('backup', 'restore', 'app-1', '--volume', 'app-root', '--system-state');
    assert.ok(ssr.restored.includes('/p1/boot'));
    await c.ok('instance', 'start', 'app', '--wait-ready');
    await c.ok('instance', 'stop', 'app');
    const fixed = await readVolume('app-root', join(c.dir.path, 'app-fixed.raw'));
    assert.equal(debugfs(fixed, root, 'cat /boot/grub/grub.cfg'), goodCfg);
    assert.equal(debugfs(fixed, data, 'cat /data.txt'), 'version 2, written after the backup\n');
    await run('e2fsck', ['-fn', `${fixed}?offset=${root}`]);

    // One file back into the volume from the same backup: the data file as it was; the rest stays.
    const into = await c.json<{ restored: string[] }>('backup', 'restore', 'app-1', '--volume', 'app-root', '--include', '/p2/data.txt');
    assert.deepEqual(into.restored, ['/p2/data.txt']);
    const outside = await c.cli('backup', 'restore', 'app-1', '--volume', 'app-root', '--include', '/etc/hosts');
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /'\/etc\/hosts' is not a path of a disk backup \(\/p<partition>\/<path>/);
    const nowhere = await c.cli('backup', 'restore', 'app-1', '--volume', 'app-root', '--include', '/p9/x');
    assert.match(nowhere.stderr, /'\/p9\/x' is on none of backup app-1's filesystems \(\/p1, \/p2\)/);
    const back = await readVolume('app-root', join(c.dir.path, 'app-back.raw'));
    assert.equal(debugfs(back, data, 'cat /data.txt'), debugfs(disk.path, data, 'cat /data.txt'), 'the data file as backed up');
    assert.notEqual(debugfs(back, data, 'cat /data.txt'), 'version 2, written after the backup\n');
    assert.equal(debugfs(back, root, 'cat /boot/grub/grub.cfg'), goodCfg);
    await run('e2fsck', ['-fn', `${back}?offset=${data}`]);
  });

  test('a backup policy from the CLI: run now, list, show', async () => {
    const created = await c.ok('backup', 'policy', 'create', 'nightly', '--schedule', '0 3 * * *', '--keep-last', '1');
    assert.match(created.stdout, /backup policy nightly created: \(every instance\) at '0 3 \* \* \*' UTC, keep last 1; next run \d{4}-/);
    const ran = await c.ok('backup', 'policy', 'run', 'nightly');
    assert.match(ran.stdout, /started nightly-app-\d{8}-\d{6}, nightly-web2-\d{8}-\d{6}/);
    await waitUntil(
      'both backups done',
      async () => (await c.json<Backup[]>('backup', 'list')).filter((b) => b.spec.policy && b.status.phase === 'completed').length === 2,
      300_000,
    );
    assert.match((await c.ok('backup', 'policy', 'list')).stdout, /nightly\s+active\s+0 3 \* \* \*\s+\(every instance\)\s+last 1/);
    const shown = await c.ok('backup', 'policy', 'show', 'nightly');
    assert.match(shown.stdout, /nightly-web2-/);
    assert.match((await c.ok('backup', 'show', ran.stdout.match(/nightly-web2-\d{8}-\d{6}/)![0])).stdout, /bmrReady:\s+yes/);
  });
});
