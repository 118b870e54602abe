/**
 * Backups through the API against a real controller, agent and diskd (no guest needed: the volume
 * is written over NBD): bad requests get a clear 4xx and change nothing; disks without a partition
 * table back up and rebuild; a backup that cannot be made fails with the reason (naming the volume)
 * and leaves no disk-engine snapshot or scratch file behind; a restore
 * that meets a missing pack fails and leaves no volume; a running backup is cancelled and leaves no
 * snapshot; deleting a backup forgets its snapshot.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Repository } from '../../src/backup/repository.ts';
import { scopePassphrase } from '../../src/backup/crypto.ts';
import { LocalStorage } from '../../src/backup/storage.ts';
import type { ApiClient } from '../../src/cli/client.ts';
import type { RunningController } from '../../src/server/index.ts';
import { buildTestDisk } from '../../src/hypervisor/guest-image/test-disk.ts';
import type { Backup, BackupPolicy } from '../../src/model/backup.ts';
import type { Volume } from '../../src/model/volume.ts';
import { refusals } from '../helpers/refusals.ts';
import { startInProcess, type InProcessCluster } from '../helpers/in-process.ts';
import { waitUntil } from '../helpers/wait.ts';
import { filesOf } from '../helpers/disk-files.ts';
import { mountDiskImage } from '../helpers/loop-disk.ts';
import { buildHostileDisks } from '../helpers/hostile-disks.ts';
import { wholeDiskExt4 } from '../helpers/small-disks.ts';
import { readDiskLayout } from '../../src/backup/disk-layout.ts';
import { AgentHub } from '../../src/controller/agents/hub.ts';
import type { AgentOp } from '../../src/model/agent-protocol.ts';

const run = promisify(execFile);

describe('backup API', { timeout: 300_000 }, () => {
  let env: InProcessCluster;
  let ctl: RunningController;
  let api: ApiClient;
  let good: Backup;
  let diskBytes: number;
  const sent: string[] = [];

  const volume = (ref: string) => api.find<Volume>(`/v1/volumes/${ref}`);
  const backup = (ref: string) => api.find<Backup>(`/v1/backups/${ref}`);
  const ready = async (name: string) => waitUntil(`volume ${name} available`, async () => (await volume(name))?.status.phase === 'available', 60_000);
  const settled = async (name: string) => {
    await waitUntil(`backup ${name} done`, async () => ['completed', 'failed', 'cancelled'].includes((await backup(name))?.status.phase ?? ''), 120_000);
    return (await backup(name))!;
  };
  const scratch = () => readdirSync(join(env.dir.path, 'agent', 'backup-work'));
  const repoDir = () => join(env.dir.path, 'controller', 'backups');

  before(async () => {
    // Every operation the controller sends, as the host receives it (a spy: the call goes through).
    const send = AgentHub.prototype.sendOp;
    AgentHub.prototype.sendOp = function (this: AgentHub, hostId: string, op: AgentOp) {
      sent.push(JSON.stringify(op));
      return send.call(this, hostId, op);
    } as typeof send;
    env = await startInProcess('bk-host');
    ({ ctl, api } = env);
    const disk = await buildTestDisk(join(env.dir.path, 'machine.raw'), { data: { sizeMiB: 8, files: { 'a.txt': 'a\n' } } });
    diskBytes = disk.sizeBytes;
    const v = await api.post<Volume>('/v1/volumes', { name: 'machine', sizeBytes: disk.sizeBytes });
    await ready('machine');
    await run('nbdcopy', [disk.path, `nbd+unix:///${v.id}?socket=${env.agent.storage.nbdSocket}`]);
    await api.post('/v1/volumes', { name: 'blank', sizeBytes: 64 * 1024 * 1024 });
    await ready('blank');
    await api.post('/v1/backups', { volume: 'machine', name: 'good' });
    good = await settled('good');
    assert.equal(good.status.phase, 'completed', good.status.message);
  });
  after(() => env?.close());

  async function state() {
    const strip = <T extends { updatedAt: string; status: unknown }>(xs: T[]) => xs.map((x) => ({ ...x, updatedAt: '', status: '' }));
    return {
      policies: strip((await api.get<{ items: BackupPolicy[] }>('/v1/backup-policies')).items),
      backups: strip((await api.get<{ items: Backup[] }>('/v1/backups')).items),
      volumes: strip((await api.get<{ items: Volume[] }>('/v1/volumes')).items),
      onHost: (await env.agent.storage.volumes()).map((v) => [v.name, v.snapshots]),
    };
  }
  const refused = (...a: Parameters<ReturnType<typeof refusals>['refused']>) => refusals(ctl, state).refused(...a);

  test('bad backup and restore requests are refused with the reason and change nothing', async () => {
    await refused('POST', '/v1/backups', {}, 400, /give volume, instance, or host with paths/);
    await refused('POST', '/v1/backups', { volume: 'machine', instance: 'x' }, 400, /give volume, instance, or host with paths/);
    await refused('POST', '/v1/backups', { volume: 'nope' }, 422, /volume 'nope' does not exist/);
    await refused('POST', '/v1/backups', { instance: 'nope' }, 422, /instance 'nope' does not exist/);
    await refused('POST', '/v1/backups', { volume: 'machine', repository: 'relative/dir' }, 400, /absolute path/);
    await refused('POST', '/v1/backups', { volume: 'machine', name: 'Not_A_Name' }, 400, /name/);
    await refused('POST', '/v1/backups', { volume: 'machine', colour: 'red' }, 400, /colour/);
    await refused('POST', '/v1/backups', { volume: 'machine', name: 'good' }, 409, /a backup named 'good' exists/);
    await refused('POST', '/v1/volumes', { name: 'r1', source: { backup: 'nope' } }, 422, /backup 'nope' does not exist/);
    await refused(
      'POST',
      '/v1/volumes',
      { name: 'r1', source: { backup: 'good' }, sizeBytes: 2 * 1024 * 1024 },
      422,
      new RegExp(`at least the source's size, \\S+ MiB \\(${diskBytes} bytes\\)`),
    );
    await refused('POST', '/v1/backups/good/restore-system-state', { volume: 'nope' }, 422, /volume 'nope' does not exist/);
    await refused('POST', '/v1/backups/nope/restore-system-state', { volume: 'machine' }, 404, /nope/);
  });

  /** A new volume of `size` bytes holding `image`, ready. */
  const volumeOf = async (name: string, image: string) => {
    const v = await api.post<Volume>('/v1/volumes', { name, sizeBytes: statSync(image).size });
    await ready(name);
    await run('nbdcopy', [image, `nbd+unix:///${v.id}?socket=${env.agent.storage.nbdSocket}`]);
    return v;
  };
  const readBack = async (name: string) => {
    const v = (await volume(name))!;
    const out = join(env.dir.path, `${name}-back.raw`);
    await run('nbdcopy', [`nbd+unix:///${v.id}?socket=${env.agent.storage.nbdSocket}`, out]);
    return out;
  };

  test('disks without a partition table (issue 18): a blank volume and one formatted whole back up and rebuild into new volumes', async () => {
    await api.post('/v1/backups', { volume: 'blank', name: 'of-blank' });
    const b = await settled('of-blank');
    assert.equal(b.status.phase, 'completed', b.status.message);
    assert.equal(b.status.result?.bmrReady, true);
    await api.post('/v1/volumes', { name: 'from-blank', source: { backup: 'of-blank' } });
    await ready('from-blank');
    assert.ok(readFileSync(await readBack('from-blank')).equals(Buffer.alloc(64 * 1024 * 1024)));

    const whole = join(env.dir.path, 'whole.raw');
    wholeDiskExt4(whole, 16, { 'etc/hostname': 'whole\n', 'srv/data.txt': 'data on the whole disk\n' });
    await volumeOf('whole', whole);
    await api.post('/v1/backups', { volume: 'whole', name: 'of-whole' });
    const w = await settled('of-whole');
    assert.equal(w.status.phase, 'completed', w.status.message);
    assert.deepEqual(
      w.status.result?.filesystems.map((f) => [f.partition, f.type]),
      [[0, 'ext4']],
    );
    await api.post('/v1/volumes', { name: 'from-whole', source: { backup: 'of-whole' } });
    await ready('from-whole');
    assert.deepEqual(filesOf(await readBack('from-whole'), 0), filesOf(whole, 0));
  });

  test("a backup that fails names the volume, never a scratch path, and leaves nothing behind; a policy's failed runs do not pile up", async () => {
    const broken = join(env.dir.path, 'broken.raw');
    wholeDiskExt4(broken, 8, { 'a.txt': 'a\n' });
    const bytes = readFileSync(broken);
    bytes.writeUInt32LE(0x7fffffff, 1024 + 4); // more blocks than the disk has
    writeFileSync(broken, bytes);
    const v = await volumeOf('broken', broken);
    await api.post('/v1/backups', { volume: 'broken', name: 'of-broken' });
    const b = await settled('of-broken');
    assert.equal(b.status.phase, 'failed');
    assert.match(b.status.message ?? '', /^backup failed: the whole disk of volume broken holds an ext filesystem Outrig cannot read/);
    assert.doesNotMatch(b.status.message ?? '', /backup-work|outrig-nbd-source|disk\.raw/);
    const onHost = (await env.agent.storage.volumes()).find((x) => x.name === v.id)!;
    assert.deepEqual(onHost.snapshots, [], 'the disk-engine snapshot is deleted');
    assert.deepEqual(scratch(), [], 'no scratch image left');
    await refused('POST', '/v1/volumes', { name: 'r2', source: { backup: 'of-broken' } }, 409, /backup 'of-broken' is failed/);
    await refused('POST', '/v1/backups/of-broken/restore-system-state', { volume: 'machine' }, 409, /is failed/);

    await api.post('/v1/instances', { name: 'brk', bootVolume: 'broken', vcpus: 1, memoryMiB: 128, labels: { tier: 'broken' }, start: false });
    await api.post<BackupPolicy>('/v1/backup-policies', { name: 'failing', schedule: '0 3 * * *', instanceLabels: { tier: 'broken' }, retention: { last: 5 } });
    const runs: string[] = [];
    for (let n = 0; n < 3; n++) {
      const p = await api.post<BackupPolicy>('/v1/backup-policies/failing/run');
      runs.push(p.status.lastRun!.started[0]!);
      assert.equal((await settled(runs[n]!)).status.phase, 'failed');
    }
    const left = async () =>
      (await api.get<{ items: Backup[] }>('/v1/backups')).items.filter((x) => x.labels['outrig.io/backup-policy'] === 'failing').map((x) => x.name);
    await waitUntil('older failures expired', async () => (await left()).length === 1);
    assert.deepEqual(await left(), [runs[2]], 'the newest failure stays to say why');
    await api.delete('/v1/backup-policies/failing');
    await api.delete('/v1/instances/brk');
  });

  test('a restore that meets a missing pack fails, and no volume is left', async () => {
    await api.post('/v1/backups', { volume: 'machine', name: 'doomed' });
    const b = await settled('doomed');
    assert.equal(b.status.phase, 'completed');
    // Remove every pack: whatever the restore reads first is missing.
    const data = join(repoDir(), b.spec.scope!, 'data');
    const saved = readdirSync(data, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
    const contents = saved.map((p) => readFileSync(p));
    for (const p of saved) rmSync(p);
    try {
      const v = await api.post<Volume>('/v1/volumes', { name: 'from-doomed', source: { backup: 'doomed' } });
      await waitUntil('the restore to fail', async () => (await volume('from-doomed'))?.status.phase === 'failed', 120_000);
      assert.match((await volume('from-doomed'))!.status.message ?? '', /create failed: .*(pack|blob)/);
      assert.ok(!(await env.agent.storage.volumes()).some((x) => x.name === v.id), 'the half-restored volume is gone from the host');
      assert.deepEqual(scratch(), []);
      await api.delete(`/v1/volumes/from-doomed`);
      await waitUntil('the failed volume deleted', async () => !(await volume('from-doomed')));
    } finally {
      saved.forEach((p, i) => writeFileSync(p, contents[i]!));
    }
  });

  test('a policy backs up the labelled instances, keeps what its retention says, and refuses bad rules', async () => {
    await api.post('/v1/instances', { name: 'app', bootVolume: 'machine', vcpus: 1, memoryMiB: 128, labels: { tier: 'web' }, start: false });
    await api.post('/v1/instances', { name: 'kern', image: 'test', vcpus: 1, memoryMiB: 128, labels: { tier: 'web' }, start: false });
    const body = { name: 'hourly', schedule: '0 * * * *', instanceLabels: { tier: 'web' }, retention: { last: 2 } };
    await refused('POST', '/v1/backup-policies', { ...body, schedule: '0 * * *' }, 400, /five fields/);
    await refused('POST', '/v1/backup-policies', { ...body, schedule: '0 25 * * *' }, 400, /not a cron expression/);
    await refused('POST', '/v1/backup-policies', { ...body, retention: {} }, 400, /at least one rule/);
    await refused('POST', '/v1/backup-policies', { ...body, retention: { last: -1 } }, 400, /last/);
    await refused('POST', '/v1/backup-policies', { ...body, repository: 'rel' }, 400, /absolute path/);
    await refused('POST', '/v1/backup-policies', { ...body, every: 'hour' }, 400, /every/);
    const created = await api.post<BackupPolicy>('/v1/backup-policies', body);
    assert.ok(Date.parse(created.status.nextRunAt!) > Date.now());
    await refused('POST', '/v1/backup-policies', body, 409, /exists/);
    await refused('PATCH', '/v1/backup-policies/hourly', { schedule: 'soon' }, 400, /five fields/);

    const runs: string[][] = [];
    for (let n = 0; n < 3; n++) {
      const p = await api.post<BackupPolicy>('/v1/backup-policies/hourly/run');
      assert.deepEqual(p.status.lastRun?.skipped, [{ instance: 'kern', reason: 'boots a kernel image: no boot volume to back up' }]);
      runs.push(p.status.lastRun!.started);
      assert.equal(runs[n]!.length, 1);
      assert.equal((await settled(runs[n]![0]!)).status.phase, 'completed');
    }
    // The third completed backup lets the first go (keep the last 2), and its snapshot is forgotten.
    await waitUntil('the oldest expired', async () => !(await backup(runs[0]![0]!))).catch(async (e: Error) => {
      throw new Error(
        `${e.message}; it is ${JSON.stringify((await backup(runs[0]![0]!))?.status)}; policy ${JSON.stringify((await api.get<BackupPolicy>('/v1/backup-policies/hourly')).status)}`,
      );
    });
    const mine = (await api.get<{ items: Backup[] }>('/v1/backups')).items.filter((b) => b.labels['outrig.io/backup-policy'] === 'hourly');
    assert.deepEqual(mine.map((b) => b.name).sort(), [runs[1]![0]!, runs[2]![0]!].sort());
    assert.equal((await api.get<BackupPolicy>('/v1/backup-policies/hourly')).status.expired, 1);
    await api.delete('/v1/backup-policies/hourly');
    assert.equal(
      (await api.get<{ items: Backup[] }>('/v1/backups')).items.filter((b) => b.labels['outrig.io/backup-policy'] === 'hourly').length,
      2,
      'its backups stay',
    );
  });

  test("a host's own files: backed up by its agent, restored whole or in part under a directory", async () => {
    const src = join(env.dir.path, 'host-files');
    mkdirSync(join(src, 'etc', 'app'), { recursive: true });
    writeFileSync(join(src, 'etc', 'app', 'app.conf'), 'port = 8080\n');
    writeFileSync(join(src, 'etc', 'secret'), 'hush\n', { mode: 0o600 });
    writeFileSync(join(src, 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    symlinkSync('etc/app/app.conf', join(src, 'link'));
    await refused('POST', '/v1/backups', { host: 'bk-host' }, 400, /paths go with host/);
    await refused('POST', '/v1/backups', { host: 'bk-host', paths: ['relative'] }, 400, /paths must be absolute/);
    await refused('POST', '/v1/backups', { host: 'nope', paths: [src] }, 422, /host 'nope' does not exist/);
    await refused('POST', '/v1/backups', { volume: 'machine', paths: [src] }, 400, /paths go with host/);
    await api.post('/v1/backups', { host: 'bk-host', paths: [src], name: 'files-1' });
    const b = await settled('files-1');
    assert.equal(b.status.phase, 'completed', b.status.message);
    assert.equal(b.status.result!.files, 3);
    assert.equal(b.status.result!.bmrReady, false);
    await refused('POST', '/v1/backups/files-1/restore-files', { target: 'relative' }, 400, /absolute/);
    await refused('POST', '/v1/backups/files-1/restore-files', { target: '/tmp/x', host: 'nope' }, 422, /host 'nope' does not exist/);

    const out = join(env.dir.path, 'restored');
    const r = await api.post<{ files: number; host: string }>('/v1/backups/files-1/restore-files', { target: out });
    assert.equal(r.files, 3);
    assert.equal(r.host, 'bk-host');
    const back = join(out, src);
    assert.equal(readFileSync(join(back, 'etc', 'app', 'app.conf'), 'utf8'), 'port = 8080\n');
    assert.equal(statSync(join(back, 'etc', 'secret')).mode & 0o777, 0o600);
    assert.ok(readFileSync(join(back, 'big.bin')).equals(Buffer.alloc(3 * 1024 * 1024, 7)));
    assert.equal(readlinkSync(join(back, 'link')), 'etc/app/app.conf');

    const part = join(env.dir.path, 'restored-part');
    const one = await api.post<{ files: number }>('/v1/backups/files-1/restore-files', { target: part, include: [join(src, 'etc', 'app')] });
    assert.equal(one.files, 1);
    assert.ok(existsSync(join(part, src, 'etc', 'app', 'app.conf')));
    assert.ok(!existsSync(join(part, src, 'big.bin')));

    // Incremental: nothing changed, nothing read again.
    await api.post('/v1/backups', { host: 'bk-host', paths: [src], name: 'files-2' });
    const again = await settled('files-2');
    assert.equal(again.status.phase, 'completed');
    assert.ok(again.status.result!.addedBytes < 64 * 1024, `added ${again.status.result!.addedBytes} bytes`);
  });

  test("a host's own disk, recorded bare-metal by its agent through its mounts, rebuilds into a volume", async () => {
    await refused('POST', '/v1/backups', { volume: 'machine', bmr: true }, 400, /bmr goes with host and paths/);
    const disk = await buildTestDisk(join(env.dir.path, 'host-disk.raw'), {
      rootUuid: '0b0e0b0e-4444-4222-8333-000000000001',
      data: { sizeMiB: 8, uuid: '0b0e0b0e-4444-4222-8333-000000000002', files: { 'd.txt': 'host data\n' } },
    });
    const root = join(env.dir.path, 'host-root');
    // The agent runs on this machine: the "host's disk" is the image on a loop device, mounted.
    const machine = await mountDiskImage(disk.path, root);
    try {
      writeFileSync(join(root, 'etc-live.conf'), 'written while mounted\n');
      await api.post('/v1/backups', { host: 'bk-host', paths: [root], bmr: true, name: 'host-disk' });
      const b = await settled('host-disk');
      assert.equal(b.status.phase, 'completed', b.status.message);
      assert.equal(b.status.result?.bmrReady, true);
      assert.deepEqual(
        b.status.result?.filesystems.map((f) => [f.partition, f.uuid]),
        [
          [1, '0b0e0b0e-4444-4222-8333-000000000001'],
          [2, '0b0e0b0e-4444-4222-8333-000000000002'],
        ],
      );
      assert.equal(b.status.sizeBytes, disk.sizeBytes, "the disk's size, for a volume rebuilt from it");
      // A path on no disk partition: the backup fails with the reason.
      await api.post('/v1/backups', { host: 'bk-host', paths: ['/proc'], bmr: true, name: 'host-proc' });
      const p = await settled('host-proc');
      assert.equal(p.status.phase, 'failed');
      assert.match(p.status.message ?? '', /no block device/);
    } finally {
      machine.release();
    }
    const layout = await readDiskLayout(disk.path, disk.sizeBytes);
    const offsets = layout.partitions.map((x) => x.start * 512);
    const before = offsets.map((o) => filesOf(disk.path, o));
    assert.ok(before[0]!['/etc-live.conf'] && before[1]!['/d.txt']);

    const v = await api.post<Volume>('/v1/volumes', { name: 'from-host', source: { backup: 'host-disk' } });
    await ready('from-host');
    assert.equal((await volume('from-host'))!.spec.sizeBytes, disk.sizeBytes);
    const back = join(env.dir.path, 'from-host.raw');
    await run('nbdcopy', [`nbd+unix:///${v.id}?socket=${env.agent.storage.nbdSocket}`, back]);
    const after = await readDiskLayout(back, disk.sizeBytes);
    assert.deepEqual(after.partitions, layout.partitions);
    assert.deepEqual(
      after.filesystems.map((f) => [f.uuid, f.label]),
      layout.filesystems.map((f) => [f.uuid, f.label]),
    );
    assert.deepEqual(
      offsets.map((o) => filesOf(back, o)),
      before,
      "each filesystem's files, and only its own",
    );
  });

  test("a host gets only its own backups' keys: never the cluster's master secret, and a volume's key opens no other scope", async () => {
    const files = join(env.dir.path, 'scope-files');
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'f.txt'), "the host's own file\n");
    await api.post('/v1/backups', { host: 'bk-host', paths: [files], name: 'other-scope' });
    const other = await settled('other-scope');
    assert.equal(other.status.phase, 'completed', other.status.message);
    const master = readFileSync(join(env.dir.path, 'backup-passphrase'), 'utf8').trim();
    const backupOps = sent.filter((o) => o.includes('"repository"'));
    assert.ok(backupOps.length >= 2);
    assert.deepEqual(
      backupOps.filter((o) => o.includes(master)),
      [],
      'the master secret went to a host',
    );
    const keyOf = (b: Backup) =>
      (JSON.parse(backupOps.find((o) => o.includes(`"backupId":"${b.id}"`))!) as { repository: { path: string; passphrase: string } }).repository;
    const mine = keyOf(good);
    const theirs = keyOf(other);
    assert.notEqual(mine.path, theirs.path);
    assert.notEqual(mine.passphrase, theirs.passphrase);
    assert.ok((await (await Repository.open(new LocalStorage(mine.path), mine.passphrase)).snapshots()).some((s) => s.id === good.status.result!.snapshotId));
    await assert.rejects(Repository.open(new LocalStorage(theirs.path), mine.passphrase), /wrong passphrase/);
    await assert.rejects(Repository.open(new LocalStorage(mine.path), theirs.passphrase), /wrong passphrase/);
  });

  test('hostile guest disks through the agent: a backup lists what it skipped, an edit in place is refused, nothing lands on the host, the agent keeps serving', async () => {
    const corpus = join(env.dir.path, 'corpus');
    mkdirSync(corpus);
    const disks = buildHostileDisks(corpus, join(env.dir.path, 'backup-passphrase'));
    const load = async (name: string) => {
      const d = disks.find((x) => x.name === name)!;
      const v = await api.post<Volume>('/v1/volumes', { name: `hostile-${name}`, sizeBytes: d.sizeBytes });
      await ready(`hostile-${name}`);
      await run('nbdcopy', [d.path, `nbd+unix:///${v.id}?socket=${env.agent.storage.nbdSocket}`]);
      return v;
    };
    await load('traversal');
    await api.post('/v1/backups', { volume: 'hostile-traversal', name: 'hostile-traversal-1' });
    const b = await settled('hostile-traversal-1');
    assert.equal(b.status.phase, 'completed', b.status.message);
    assert.deepEqual(b.status.result!.unreadable!.map((u) => u.error).sort(), [
      'not backed up: a name holding "/"',
      'not backed up: a name holding "/"',
      'not backed up: the name ".."',
    ]);
    const control = await load('control');
    await api.post('/v1/backups', { volume: 'hostile-control', name: 'hostile-control-1' });
    assert.equal((await settled('hostile-control-1')).status.phase, 'completed');
    const before = (await run('nbdcopy', [`nbd+unix:///${control.id}?socket=${env.agent.storage.nbdSocket}`, '-'], { encoding: 'buffer', maxBuffer: 64 << 20 }))
      .stdout;
    await assert.rejects(api.post('/v1/backups/hostile-control-1/restore-system-state', { volume: 'hostile-control' }), /cannot carry through a rebuild/);
    const after = (await run('nbdcopy', [`nbd+unix:///${control.id}?socket=${env.agent.storage.nbdSocket}`, '-'], { encoding: 'buffer', maxBuffer: 64 << 20 }))
      .stdout;
    assert.ok(after.equals(before), 'the refused restore changed the volume');
    for (const d of disks) for (const e of d.escapes) assert.equal(existsSync(e), false, `${e} was written on the host`);
    assert.equal((await api.get<{ status: { phase: string } }>('/v1/hosts/bk-host')).status.phase, 'ready');
  });

  // Issue 18, finding 5: a backup through the controller could not be stopped part way.
  test('a running backup is cancelled: no snapshot in the repository, the disk-engine snapshot gone, the volume still backs up', async () => {
    await refused('POST', '/v1/backups/good/cancel', {}, 409, /backup 'good' is completed: there is no run to cancel/);
    await refused('POST', '/v1/backups/nope/cancel', {}, 404, /nope/);
    // Incompressible data with no partition table: read block by block, a few seconds of work.
    const big = join(env.dir.path, 'big.raw');
    writeFileSync(big, randomBytes(256 * 1024 * 1024));
    const v = await volumeOf('big', big);
    rmSync(big);
    await api.post('/v1/backups', { volume: 'big', name: 'of-big' });
    const asked = await api.post<Backup>('/v1/backups/of-big/cancel', {});
    assert.ok(asked.status.cancel, 'the cancel is recorded');
    const b = await settled('of-big');
    assert.equal(b.status.phase, 'cancelled', b.status.message);
    assert.equal(b.status.result, undefined);
    assert.ok(
      sent.some((o) => o === JSON.stringify({ opId: `${b.id}/cancel`, kind: 'op.cancel', target: `${b.id}/create` })),
      'the agent was told to stop the run',
    );
    await refused('POST', '/v1/backups/of-big/cancel', {}, 409, /is cancelled: there is no run to cancel/);
    await refused('POST', '/v1/volumes', { name: 'r3', source: { backup: 'of-big' } }, 409, /backup 'of-big' is cancelled/);
    const pass = scopePassphrase(readFileSync(join(env.dir.path, 'backup-passphrase'), 'utf8').trim(), b.spec.scope!);
    const dir = join(repoDir(), b.spec.scope!);
    assert.deepEqual(await (await Repository.open(new LocalStorage(dir), pass)).snapshots(), [], 'no snapshot of the cancelled run');
    await waitUntil('the disk-engine snapshot deleted', async () => (await env.agent.storage.volumes()).find((x) => x.name === v.id)?.snapshots.length === 0);
    assert.deepEqual(scratch(), [], 'no scratch image left');

    assert.equal((await volume('big'))!.status.phase, 'available');
    await api.post('/v1/backups', { volume: 'big', name: 'of-big-2' });
    const again = await settled('of-big-2');
    assert.equal(again.status.phase, 'completed', again.status.message);
    assert.deepEqual(
      (await (await Repository.open(new LocalStorage(dir), pass)).snapshots()).map((x) => x.id),
      [again.status.result!.snapshotId],
    );
    await api.delete('/v1/backups/of-big-2');
    await api.delete('/v1/backups/of-big');
    await waitUntil('the backups gone', async () => !(await backup('of-big-2')) && !(await backup('of-big')));
    await api.delete('/v1/volumes/big');
  });

  test('deleting a backup forgets its snapshot in the repository', async () => {
    const pass = scopePassphrase(readFileSync(join(env.dir.path, 'backup-passphrase'), 'utf8').trim(), good.spec.scope!);
    const dir = join(repoDir(), good.spec.scope!);
    const repo = await Repository.open(new LocalStorage(dir), pass);
    const snaps = (await repo.snapshots()).map((s) => s.id);
    assert.ok(snaps.includes(good.status.result!.snapshotId));
    await api.delete('/v1/backups/good');
    await waitUntil('the backup gone', async () => !(await backup('good')));
    const after = (await (await Repository.open(new LocalStorage(dir), pass)).snapshots()).map((s) => s.id);
    assert.deepEqual(
      after,
      snaps.filter((s) => s !== good.status.result!.snapshotId),
    );
  });
});
