/** The agent's VM manager with real QEMU: reports, exit detection and its reasons, and a guest that unplugs its own disk. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unplugDisk } from '../../src/agent/hotplug.ts';
import { VmManager } from '../../src/agent/vm-manager.ts';
import { createLogger } from '../../src/common/log.ts';
import { DiskEngine, serveDisk } from '../../src/disk/index.ts';
import { QemuDriver, blockdevOptions, buildTestGuest, type GuestImageManifest } from '../../src/hypervisor/index.ts';
import type { VmDefinition } from '../../src/model/agent-protocol.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { TEST_HOOK_ARG, guestDiskSerials, guestPowersOffDiskSlot, hookReady } from '../helpers/guest-hook.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('VM manager', () => {
  const dir = tempDir();
  const imgDir = join(dir.path, 'image');
  let img: GuestImageManifest;
  let changes = 0;
  const driver = new QemuDriver({ vmsDir: join(dir.path, 'vms') });
  let vms: VmManager;

  before(async () => {
    img = await buildTestGuest({ outDir: imgDir });
    vms = new VmManager({
      driver,
      // Image files straight from the local build; downloading them is the image cache's business.
      images: { ensure: async () => ({ kernel: join(imgDir, 'vmlinuz'), initrd: join(imgDir, 'initrd.img') }) },
      accel: 'tcg',
      stopTimeoutMs: 20_000,
      log: createLogger('test', { file: join(dir.path, 'log') }),
      onChange: () => changes++,
      nbdSocket: join(dir.path, 'nbd.sock'),
    });
  });
  after(async () => {
    vms.close();
    await killProcessesUnder(dir.path);
    dir.remove();
  });

  const def = (name: string): VmDefinition => ({
    name,
    vcpus: 1,
    memoryMiB: 256,
    image: { id: 'img-x', name: 'test', cmdline: img.cmdline, readyMarker: img.readyMarker, files: { kernel: img.files.kernel, initrd: img.files.initrd } },
    forwardPorts: [80],
    disks: [],
    generation: 3,
    restartSeq: 1,
  });

  test('a started VM is reported running with its generation, ports and, once booted, readiness', async () => {
    const before = changes;
    await vms.start('i-a', def('a'));
    assert.ok(changes > before);
    const r = vms.report().find((v) => v.instanceId === 'i-a')!;
    assert.equal(r.state, 'running');
    assert.equal(r.generation, 3);
    assert.equal(r.restartSeq, 1);
    assert.equal(r.forwards[0]?.guestPort, 80);
    await waitUntil('readyAt', () => vms.report().find((v) => v.instanceId === 'i-a')?.readyAt, 60_000);
    await vms.start('i-a', def('a'));
    assert.equal(vms.report().filter((v) => v.instanceId === 'i-a').length, 1, 'starting a running VM is a no-op');
  });

  test('a guest that powers itself off is seen at once, with the guest-shutdown reason', async () => {
    // The ACPI button through QMP is what a guest-initiated poweroff looks like from outside.
    await (await driver.qmp('i-a')).execute('system_powerdown');
    const r = await waitUntil('VM stopped', () => {
      const v = vms.report().find((x) => x.instanceId === 'i-a');
      return v?.state === 'stopped' ? v : undefined;
    }, 30_000);
    assert.equal(r.lastExit?.reason, 'guest-shutdown');
    assert.equal(r.pid, undefined);
  });

  test('delete removes the VM from reports and its directory from disk', async () => {
    await vms.delete('i-a');
    assert.equal(vms.report().some((v) => v.instanceId === 'i-a'), false);
    assert.deepEqual(await driver.listIds(), []);
  });
});

/**
 * A root guest can unplug its own hot-plugged disk by powering off the PCIe slot; QEMU then deletes
 * the device without being asked. The agent must notice, close the block node, forget the disk and
 * report it released, and a later detach of that volume must neither fail nor leave a timer behind
 * whose rejection nobody handles (that ended the agent, and `outrig up` with it, 30 s later).
 */
describe('VM manager: a guest that unplugs its own disk', () => {
  const dir = tempDir();
  const imgDir = join(dir.path, 'image');
  const nbdSocket = join(dir.path, 'nbd.sock');
  const driver = new QemuDriver({ vmsDir: join(dir.path, 'vms') });
  const log = createLogger('test', { file: join(dir.path, 'log') });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => void unhandled.push(e);
  let img: GuestImageManifest;
  let vms: VmManager;
  let nbd: Awaited<ReturnType<typeof serveDisk>>;
  const manager = () =>
    new VmManager({
      driver,
      images: { ensure: async () => ({ kernel: join(imgDir, 'vmlinuz'), initrd: join(imgDir, 'initrd.img') }) },
      accel: 'tcg',
      stopTimeoutMs: 20_000,
      log,
      onChange: () => undefined,
      nbdSocket,
    });

  before(async () => {
    process.on('unhandledRejection', onUnhandled);
    img = await buildTestGuest({ outDir: imgDir });
    DiskEngine.create(join(dir.path, 'v-u.odsk'), { size: 64 * 1024 * 1024 });
    nbd = await serveDisk({ file: join(dir.path, 'v-u.odsk'), socket: nbdSocket, name: 'v-u' });
    vms = manager();
  });
  after(async () => {
    process.off('unhandledRejection', onUnhandled);
    vms.close();
    await killProcessesUnder(dir.path);
    await nbd.close();
    dir.remove();
  });

  const report = () => vms.report().find((v) => v.instanceId === 'i-u');
  const port = () => report()!.forwards[0]!.hostPort;
  const blockNodes = async () => ((await (await driver.qmp('i-u')).execute('query-named-block-nodes')) as { 'node-name': string }[]).map((n) => n['node-name']);
  const plugged = async () => {
    await vms.attach('i-u', 'v-u', 'g7');
    await waitUntil('the guest to see the disk', async () => (await guestDiskSerials(port())).includes('v-u'));
  };

  test('the agent sees the guest unplug a disk: block node closed, spec updated, released reported; detach is then a no-op', async () => {
    await vms.start('i-u', {
      name: 'u',
      vcpus: 1,
      memoryMiB: 256,
      image: { id: 'img-x', name: 'test', cmdline: img.cmdline, readyMarker: img.readyMarker, files: { kernel: img.files.kernel, initrd: img.files.initrd } },
      kernelArgs: TEST_HOOK_ARG,
      forwardPorts: [80],
      disks: [],
      generation: 1,
      restartSeq: 0,
    });
    await hookReady(port());
    await plugged();
    assert.match(await guestPowersOffDiskSlot(port(), 'v-u'), /\/sys\/bus\/pci\/slots\//);
    await waitUntil('the report to drop the disk', () => report()?.disks.length === 0, 30_000);
    assert.deepEqual(report()!.released, [{ volumeId: 'v-u', tag: 'g7' }]);
    assert.deepEqual((await driver.readSpec('i-u'))!.disks, [], 'vm.json forgets the volume');
    await waitUntil('the block node to be closed', async () => !(await blockNodes()).includes('vol-v-u'));
    await vms.detach('i-u', 'v-u');
    assert.equal(report()!.state, 'running');
  });

  test('a volume the guest released plugs in again (its node name is free), and a new attach clears the release', async () => {
    await plugged();
    assert.equal(report()!.released, undefined);
    await vms.detach('i-u', 'v-u');
    assert.deepEqual(report()!.disks, []);
  });

  test('an unplug the agent missed (it was not running) is found when it adopts the VM', async () => {
    await plugged();
    vms.close();
    assert.match(await guestPowersOffDiskSlot(port(), 'v-u'), /\/sys\/bus\/pci\/slots\//);
    vms = manager();
    await vms.adoptAll();
    await waitUntil('the adopting agent to see the disk gone', () => report()?.released?.some((r) => r.volumeId === 'v-u'), 30_000);
    assert.deepEqual(report()!.disks, []);
    assert.ok(!(await blockNodes()).includes('vol-v-u'));
  });

  test('detaching a device that is already gone (DeviceNotFound) closes its block node and leaves no timer or rejection behind', async () => {
    const qmp = await driver.qmp('i-u');
    const disk = { volumeId: 'v-u', socket: nbdSocket, export: 'v-u', boot: false, port: 3 };
    await qmp.execute('blockdev-add', blockdevOptions(disk));
    const timers = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await unplugDisk(qmp, 'v-u', 30_000);
    assert.ok(!(await blockNodes()).includes('vol-v-u'));
    assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, timers, 'the 30 s wait was cleared');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  });
});
