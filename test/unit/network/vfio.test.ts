/**
 * Passing a VF through: these machines have no SR-IOV NIC and no IOMMU, so the plans are tested on
 * their own and the sysfs reader and writer against a tree laid out as the kernel lays /sys out
 * (driver and iommu_group are symlinks; kernel/iommu_groups/N/devices lists the group).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { applySysfsWrites, planVfioBind, planVfioRelease, readPciDevice, vfioLoaded } from '../../../src/network/vfio.ts';

const VF = '0000:03:10.1';
const vf = { address: VF, driver: 'igbvf', iommuGroup: '17', groupDevices: [{ address: VF, driver: 'igbvf' }] };

test('a VF alone in its IOMMU group is bound to vfio-pci: override, unbind from its driver, reprobe', () => {
  assert.deepEqual(planVfioBind(vf, true), {
    ok: true,
    writes: [
      { path: `bus/pci/devices/${VF}/driver_override`, value: 'vfio-pci' },
      { path: `bus/pci/devices/${VF}/driver/unbind`, value: VF },
      { path: 'bus/pci/drivers_probe', value: VF },
    ],
  });
  assert.deepEqual(planVfioBind({ ...vf, driver: undefined }, true), {
    ok: true,
    writes: [
      { path: `bus/pci/devices/${VF}/driver_override`, value: 'vfio-pci' },
      { path: 'bus/pci/drivers_probe', value: VF },
    ],
  });
  assert.deepEqual(planVfioBind({ ...vf, driver: 'vfio-pci' }, true), { ok: true, writes: [] }, 'already bound: nothing to do');
});

test('refused with the reason: no vfio-pci, no IOMMU, a group shared with a device the host uses', () => {
  const no = (p: ReturnType<typeof planVfioBind>) => (p.ok ? '' : p.reason);
  assert.match(no(planVfioBind(vf, false)), /vfio-pci driver is not loaded \(modprobe vfio-pci\)/);
  assert.match(no(planVfioBind({ ...vf, iommuGroup: undefined, groupDevices: [] }, true)), /in no IOMMU group: .*intel_iommu=on/);
  const shared = { ...vf, groupDevices: [...vf.groupDevices, { address: '0000:03:00.0', driver: 'igb' }, { address: '0000:00:01.0', driver: 'pcieport' }] };
  assert.match(no(planVfioBind(shared, true)), /IOMMU group 17 of 0000:03:10\.1 also holds 0000:03:00\.0 \(igb\): a guest can only have a whole group/);
});

test('after the guest the VF goes back to its own driver', () => {
  assert.deepEqual(planVfioRelease({ ...vf, driver: 'vfio-pci' }), [
    { path: `bus/pci/devices/${VF}/driver_override`, value: '\n' },
    { path: `bus/pci/devices/${VF}/driver/unbind`, value: VF },
    { path: 'bus/pci/drivers_probe', value: VF },
  ]);
});

const root = mkdtempSync(join(tmpdir(), 'outrig-vfio-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('the device read from a sysfs tree, and the plan written into it', async () => {
  const dev = join(root, 'devices', 'pci0000:00', '0000:00:01.0', VF);
  mkdirSync(dev, { recursive: true });
  mkdirSync(join(root, 'bus', 'pci', 'devices'), { recursive: true });
  symlinkSync(dev, join(root, 'bus', 'pci', 'devices', VF));
  const igbvf = join(root, 'bus', 'pci', 'drivers', 'igbvf');
  mkdirSync(igbvf, { recursive: true });
  writeFileSync(join(igbvf, 'unbind'), '');
  symlinkSync(igbvf, join(dev, 'driver'));
  const group = join(root, 'kernel', 'iommu_groups', '17');
  mkdirSync(join(group, 'devices'), { recursive: true });
  symlinkSync(dev, join(group, 'devices', VF));
  symlinkSync(group, join(dev, 'iommu_group'));
  writeFileSync(join(dev, 'driver_override'), '');
  writeFileSync(join(root, 'bus', 'pci', 'drivers_probe'), '');

  const state = await readPciDevice(root, VF);
  assert.deepEqual(state, vf);
  assert.equal(await vfioLoaded(root), false);
  mkdirSync(join(root, 'bus', 'pci', 'drivers', 'vfio-pci'));
  assert.equal(await vfioLoaded(root), true);
  const plan = planVfioBind(state, await vfioLoaded(root));
  assert.ok(plan.ok);
  await applySysfsWrites(root, plan.writes);
  assert.equal(readFileSync(join(dev, 'driver_override'), 'utf8'), 'vfio-pci');
  assert.equal(readFileSync(join(igbvf, 'unbind'), 'utf8'), VF);
  assert.equal(readFileSync(join(root, 'bus', 'pci', 'drivers_probe'), 'utf8'), VF);
  await assert.rejects(readPciDevice(root, '0000:09:00.0'), /PCI device 0000:09:00\.0 does not exist/);
  await assert.rejects(applySysfsWrites(root, [{ path: 'bus/pci/nonexistent/x', value: '1' }]), /writing "1" to \/sys\/bus\/pci\/nonexistent\/x failed/);
});
