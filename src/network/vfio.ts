/**
 * A virtual function handed to QEMU whole: bound to vfio-pci through sysfs (driver_override, unbind,
 * drivers_probe) and given back to its own driver afterwards. The kernel allows it only through
 * the IOMMU, one IOMMU group at a time, so a VF whose group holds devices still used by the host is
 * refused with the reason, and the guest gets a tap instead. These machines have no SR-IOV NIC and
 * no IOMMU: the plans are pure and tested against sysfs trees laid out as the kernel lays them;
 * the adapter writes into whatever sysfs root it is given.
 */
import { access, readdir, readlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

const VFIO_DRIVER = 'vfio-pci';

interface PciDeviceState {
  address: string;
  /** The bound driver's name; undefined when none is. */
  driver?: string;
  /** The IOMMU group's number; undefined without an IOMMU (or with it off). */
  iommuGroup?: string;
  /** Every device of that group, with its driver. */
  groupDevices: { address: string; driver?: string }[];
}

/** One write into sysfs, relative to its root (e.g. bus/pci/drivers_probe). */
interface SysfsWrite {
  path: string;
  value: string;
}

type VfioPlan = { ok: true; writes: SysfsWrite[] } | { ok: false; reason: string };

/** What binds the device to vfio-pci, or why it cannot be passed through. Pure. */
export function planVfioBind(d: PciDeviceState, vfioLoaded: boolean): VfioPlan {
  if (!vfioLoaded) return { ok: false, reason: `the ${VFIO_DRIVER} driver is not loaded (modprobe ${VFIO_DRIVER})` };
  if (d.iommuGroup === undefined) {
    return {
      ok: false,
      reason: `${d.address} is in no IOMMU group: the IOMMU is off or absent (intel_iommu=on or amd_iommu=on on the kernel command line), and without it a device cannot be given to a guest`,
    };
  }
  const others = d.groupDevices.filter((x) => x.address !== d.address && x.driver !== VFIO_DRIVER && x.driver !== 'pcieport');
  if (others.length) {
    return {
      ok: false,
      reason: `IOMMU group ${d.iommuGroup} of ${d.address} also holds ${others.map((x) => `${x.address} (${x.driver ?? 'no driver'})`).join(', ')}: a guest can only have a whole group`,
    };
  }
  if (d.driver === VFIO_DRIVER) return { ok: true, writes: [] };
  const dev = `bus/pci/devices/${d.address}`;
  return {
    ok: true,
    writes: [
      { path: `${dev}/driver_override`, value: VFIO_DRIVER },
      ...(d.driver ? [{ path: `${dev}/driver/unbind`, value: d.address }] : []),
      { path: 'bus/pci/drivers_probe', value: d.address },
    ],
  };
}

/** What gives the device back to its own driver after the guest. Pure. */
export function planVfioRelease(d: PciDeviceState): SysfsWrite[] {
  const dev = `bus/pci/devices/${d.address}`;
  return [
    // An empty override (a newline, as the kernel takes it) lets the device's own driver match again.
    { path: `${dev}/driver_override`, value: '\n' },
    ...(d.driver === VFIO_DRIVER ? [{ path: `${dev}/driver/unbind`, value: d.address }] : []),
    { path: 'bus/pci/drivers_probe', value: d.address },
  ];
}

async function linkName(path: string): Promise<string | undefined> {
  try {
    return basename(await readlink(path));
  } catch {
    return undefined;
  }
}

/** The device's driver and IOMMU group, read from sysfs (`root` is /sys). */
export async function readPciDevice(root: string, address: string): Promise<PciDeviceState> {
  const dev = join(root, 'bus', 'pci', 'devices', address);
  await access(dev).catch(() => {
    throw new Error(`PCI device ${address} does not exist`);
  });
  const iommuGroup = await linkName(join(dev, 'iommu_group'));
  const groupDevices: PciDeviceState['groupDevices'] = [];
  if (iommuGroup !== undefined) {
    for (const a of (await readdir(join(root, 'kernel', 'iommu_groups', iommuGroup, 'devices')).catch(() => [] as string[])).sort()) {
      groupDevices.push({ address: a, driver: await linkName(join(root, 'bus', 'pci', 'devices', a, 'driver')) });
    }
  }
  return { address, driver: await linkName(join(dev, 'driver')), iommuGroup, groupDevices };
}

export async function vfioLoaded(root: string): Promise<boolean> {
  return access(join(root, 'bus', 'pci', 'drivers', VFIO_DRIVER)).then(
    () => true,
    () => false,
  );
}

export async function applySysfsWrites(root: string, writes: SysfsWrite[]): Promise<void> {
  for (const w of writes) {
    await writeFile(join(root, w.path), w.value).catch((e: Error) => {
      throw new Error(`writing ${JSON.stringify(w.value.trim())} to /sys/${w.path} failed: ${e.message}`, { cause: e });
    });
  }
}
