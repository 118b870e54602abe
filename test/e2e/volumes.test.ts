/**
 * Acceptance, volumes: a real guest writes a file to a volume, the instance is deleted, and a new
 * instance with the same volume reads it back. Also: hot-plug and unplug on a running guest, a guest
 * that unplugs its own disk, snapshot and clone, and booting from an image-backed clone of an
 * imported qcow2 disk.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { buildTestDisk } from '../../src/hypervisor/guest-image/test-disk.ts';
import { findProcessesWith } from '../../src/hypervisor/process.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { Volume } from '../../src/model/volume.ts';
import { TEST_HOOK_ARG, guestDiskSerials, guestPowersOffDiskSlot, hookReady } from '../helpers/guest-hook.ts';
import { waitUntil } from '../helpers/wait.ts';
import { Cluster } from './cluster.ts';

const run = promisify(execFile);

describe('volumes', () => {
  const c = new Cluster();
  before(() => c.up());
  after(() => c.stop());

  const ok = (...args: string[]) => c.ok(...args);
  const inst = (name: string) => c.json<Instance>('instance', 'show', name);
  const vol = (name: string) => c.json<Volume>('volume', 'show', name);
  const consoleOf = async (name: string) => c.serialLog((await inst(name)).id);

  test('a file a guest wrote to a volume is read back by a new instance after the first is deleted', async () => {
    await ok('volume', 'create', 'data', '--size', '256M');
    assert.equal((await vol('data')).status.phase, 'available');
    await ok('instance', 'create', 'w1', '--image', 'test', '--volume', 'data', '--kernel-args', 'outrig.note=written-by-w1', '--wait-ready');
    const w1 = await inst('w1');
    await waitUntil('w1 to write its note', async () => /OUTRIG-VOLUME vda serial=v-\w+ note=written-by-w1/.test(await consoleOf('w1')));
    assert.equal((await vol('data')).status.attachedTo, w1.id);
    await ok('instance', 'delete', 'w1', '--force');
    assert.deepEqual(await findProcessesWith(w1.id), []);
    await waitUntil('volume released', async () => (await vol('data')).status.phase === 'available');
    await ok('instance', 'create', 'w2', '--image', 'test', '--volume', 'data', '--wait-ready');
    await waitUntil('w2 to read the note', async () => /OUTRIG-VOLUME vda serial=v-\w+ note=written-by-w1/.test(await consoleOf('w2')));
  });

  test('volumes plug into and out of a running guest', async () => {
    await ok('volume', 'create', 'extra', '--size', '64M');
    await ok('volume', 'attach', 'extra', 'w2');
    await waitUntil('the guest to see the new disk', async () => /OUTRIG-VOLUME vdb serial=v-\w+ note=/.test(await consoleOf('w2')), 30_000);
    assert.equal((await vol('extra')).status.phase, 'in-use');
    const refused = await c.cli('volume', 'delete', 'extra');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is attached; detach it first/);
    await ok('volume', 'detach', 'extra');
    await waitUntil('the guest to see it go', async () => /OUTRIG-VOLUME-GONE vdb/.test(await consoleOf('w2')), 30_000);
    assert.equal((await vol('extra')).status.phase, 'available');
    await ok('volume', 'delete', 'extra');
  });

  test('a guest that unplugs its own disk (powers off its slot) neither crashes the agent nor keeps the volume in use', async () => {
    await ok('volume', 'create', 'ejected', '--size', '64M');
    await ok('instance', 'create', 'h1', '--image', 'test', '--kernel-args', TEST_HOOK_ARG, '--wait-ready');
    const fwd = (await inst('h1')).status.network.forwards[0]!;
    await hookReady(fwd.hostPort);
    const serial = (await vol('ejected')).id.slice(0, 20);
    const seen = async () => (await guestDiskSerials(fwd.hostPort)).includes(serial);
    const available = (why: string) =>
      waitUntil(
        why,
        async () => {
          const v = await vol('ejected');
          return v.status.phase === 'available' && !v.spec.attachedTo && !v.status.attachedTo ? v : undefined;
        },
        60_000,
      );

    // As in the report: the guest pulls the disk, then the operator detaches it.
    await ok('volume', 'attach', 'ejected', 'h1');
    await waitUntil('the guest to see the disk', seen, 60_000);
    assert.match(await guestPowersOffDiskSlot(fwd.hostPort, serial), /\/sys\/bus\/pci\/slots\//);
    await ok('volume', 'detach', 'ejected');
    await available('the volume detached and available');

    // Plugged in again (its block node was closed), then pulled by the guest alone: the controller detaches it.
    await ok('volume', 'attach', 'ejected', 'h1');
    await waitUntil('the guest to see the disk again', seen, 60_000);
    assert.match(await guestPowersOffDiskSlot(fwd.hostPort, serial), /\/sys\/bus\/pci\/slots\//);
    const v = await available('the controller to detach the volume the guest released');
    assert.match(v.status.conditions.find((x) => x.type === 'GuestReleased' && x.status === 'True')?.message ?? '', /unplugged it/);
    assert.equal(c.agent!.proc.exitCode, null, 'the agent is still running');
    await ok('instance', 'delete', 'h1', '--force');
    await ok('volume', 'delete', 'ejected');
  });

  test('a clone of a snapshot starts with the snapshot content and shares its space', async () => {
    await ok('volume', 'snapshot', 'data', 'data-snap');
    await ok('volume', 'clone', 'data-snap', 'data-copy');
    const copy = await vol('data-copy');
    assert.equal(copy.status.usedBytes, 0, 'nothing copied until written');
    await ok('volume', 'attach', 'data-copy', 'w2');
    await waitUntil(
      'the clone in the guest, with the note',
      async () => /OUTRIG-VOLUME vdb serial=v-\w+ note=written-by-w1/.test(await consoleOf('w2')),
      30_000,
    );
    const refused = await c.cli('volume', 'delete-snapshot', 'data-snap');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /has clones: data-copy/);
  });

  test('an instance boots from a clone of an imported qcow2 disk image, which goes with it', async () => {
    const raw = join(c.dir.path, 'boot.raw');
    const qcow2 = join(c.dir.path, 'boot.qcow2');
    await buildTestDisk(raw);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
    await ok('image', 'import', qcow2, '--name', 'bootdisk', '--ready-marker', 'OUTRIG-GUEST-READY', '--port', '80');
    await ok('instance', 'create', 'b1', '--image', 'bootdisk', '--wait-ready');
    const b1 = await inst('b1');
    assert.ok(b1.spec.bootVolume);
    assert.match(await consoleOf('b1'), /OUTRIG-GUEST-READY name=b1/);
    const f = b1.status.network.forwards[0]!;
    assert.equal((await (await fetch(`http://${f.hostAddress}:${f.hostPort}/`)).text()).trim(), 'outrig test guest b1');
    await ok('instance', 'delete', 'b1', '--force');
    await waitUntil('its boot volume deleted with it', async () => !(await c.json<Volume[]>('volume', 'list')).some((v) => v.name === 'b1-root'));
  });
});
