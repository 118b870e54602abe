/** The QEMU driver against real QEMU (TCG here, since KVM cannot boot guests on these machines). */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/agent/ports.ts';
import { QemuDriver, QemuLaunchError, buildTestGuest, macFor, type GuestImageManifest, type VmSpec } from '../../src/hypervisor/index.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('QEMU driver', () => {
  const dir = tempDir();
  const imgDir = join(dir.path, 'image');
  let img: GuestImageManifest;
  const driver = new QemuDriver({ vmsDir: join(dir.path, 'vms') });

  before(async () => {
    img = await buildTestGuest({ outDir: imgDir });
  });
  after(async () => {
    driver.releaseAll();
    await killProcessesUnder(dir.path);
    dir.remove();
  });

  const spec = async (id: string, hostPort?: number): Promise<VmSpec> => ({
    id,
    name: id,
    vcpus: 1,
    memoryMiB: 256,
    kernel: join(imgDir, 'vmlinuz'),
    initrd: join(imgDir, 'initrd.img'),
    cmdline: img.cmdline,
    accel: 'tcg',
    forwards: [{ guestPort: 80, hostAddress: '127.0.0.1', hostPort: hostPort ?? (await freePort('127.0.0.1')) }],
    readyMarker: img.readyMarker,
    mac: macFor(id),
    disks: [],
    owner: { generation: 1, restartSeq: 0 },
  });

  test('launch runs a detached VM that boots, serves HTTP and answers QMP; stop powers it down; remove leaves nothing', async () => {
    const s = await spec('vm-a');
    const { pid } = await driver.launch(s);
    assert.equal(await driver.runningPid('vm-a'), pid);
    const paths = driver.paths('vm-a');
    await waitUntil(
      'ready marker',
      () => existsSync(paths.serialLog) && readFileSync(paths.serialLog, 'utf8').includes(`${img.readyMarker} name=vm-a`),
      60_000,
    );
    const body = await waitUntil('guest HTTP', async () => (await fetch(`http://127.0.0.1:${s.forwards[0]!.hostPort}/`)).text(), 10_000);
    assert.equal(body.trim(), 'outrig test guest vm-a');
    const qmp = await driver.qmp('vm-a');
    assert.deepEqual(await qmp.execute('query-status'), { status: 'running', singlestep: false, running: true });
    assert.equal(await driver.qmp('vm-a'), qmp, 'one shared QMP connection per VM');

    assert.equal(await driver.stop('vm-a', 30_000), 'powerdown');
    assert.equal(await driver.runningPid('vm-a'), null);
    assert.match(readFileSync(paths.serialLog, 'utf8'), /power button pressed/);
    await driver.remove('vm-a');
    assert.equal(existsSync(paths.dir), false);
  });

  test('a forwarded port someone else holds is a launch error that says so', async () => {
    const squatter = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => squatter.once('listening', r));
    const port = (squatter.address() as { port: number }).port;
    try {
      await assert.rejects(driver.launch(await spec('vm-b', port)), (e: unknown) => e instanceof QemuLaunchError && e.portInUse);
      assert.equal(await driver.runningPid('vm-b'), null);
    } finally {
      squatter.close();
      await driver.remove('vm-b');
    }
  });

  test('a stale pidfile naming some other live process is not mistaken for the VM', async () => {
    const s = await spec('vm-c');
    await driver.launch(s);
    await driver.kill('vm-c');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(driver.paths('vm-c').pidfile, String(process.pid));
    assert.equal(await driver.runningPid('vm-c'), null);
    await driver.remove('vm-c');
  });
});
