/** The agent's VM manager with real QEMU: reports, exit detection and its reasons. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { VmManager } from '../../src/agent/vm-manager.ts';
import { createLogger } from '../../src/common/log.ts';
import { QemuDriver, buildTestGuest, type GuestImageManifest } from '../../src/hypervisor/index.ts';
import type { VmDefinition } from '../../src/model/agent-protocol.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
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
