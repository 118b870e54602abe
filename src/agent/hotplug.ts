/**
 * Volume hot-plug over QMP (blockdev-add + device_add on a PCIe root port, device_del + blockdev-del).
 * The guest takes part in an unplug and may also unplug a disk on its own (powering off its slot),
 * so nothing here trusts it to answer: every wait ends, and none leaves a promise unhandled.
 */
import {
  QmpError,
  blockdevAdd,
  blockdevDel,
  blockdevOptions,
  deviceAdd,
  deviceDel,
  diskDevice,
  diskDeviceOptions,
  diskNode,
  qomList,
  type QmpClient,
  type QmpEvent,
  type VmDisk,
} from '../hypervisor/index.ts';

const DEVICE_PREFIX = diskDevice('');

/** The volume whose virtio-blk device a DEVICE_DELETED event is about, if it is one of ours. */
export function unpluggedVolume(ev: QmpEvent): string | undefined {
  if (ev.event !== 'DEVICE_DELETED') return undefined;
  const device = (ev.data as { device?: unknown } | undefined)?.device;
  return typeof device === 'string' && device.startsWith(DEVICE_PREFIX) && device.length > DEVICE_PREFIX.length
    ? device.slice(DEVICE_PREFIX.length)
    : undefined;
}

export async function plugDisk(qmp: QmpClient, disk: VmDisk): Promise<void> {
  await blockdevAdd(qmp, blockdevOptions(disk));
  try {
    await deviceAdd(qmp, diskDeviceOptions(disk));
  } catch (e) {
    await dropBlockNode(qmp, disk.volumeId).catch(() => undefined);
    throw e;
  }
}

/** Closes the volume's NBD block node; one that is already gone counts as closed. */
export async function dropBlockNode(qmp: QmpClient, volumeId: string): Promise<void> {
  try {
    await blockdevDel(qmp, diskNode(volumeId));
  } catch (e) {
    // QEMU 7.2 says GenericError "Failed to find node with node-name=...".
    if (!(e instanceof QmpError && /find node/i.test(e.message))) throw e;
  }
}

/**
 * Waits for the device's DEVICE_DELETED. Settles with what happened instead of rejecting, so a wait
 * that nobody awaits any more (device_del failed) cannot become an unhandled rejection; `cancel`
 * clears its timer at once.
 */
function waitForUnplug(
  qmp: QmpClient,
  volumeId: string,
  timeoutMs: number,
): { done: Promise<'deleted' | 'timeout' | 'closed' | 'cancelled'>; cancel: () => void } {
  let finish!: (r: 'deleted' | 'timeout' | 'closed' | 'cancelled') => void;
  const done = new Promise<'deleted' | 'timeout' | 'closed' | 'cancelled'>((resolve) => (finish = resolve));
  const onEvent = (ev: QmpEvent) => {
    if (unpluggedVolume(ev) === volumeId) end('deleted');
  };
  const onClose = () => end('closed');
  const timer = setTimeout(() => end('timeout'), timeoutMs);
  function end(r: 'deleted' | 'timeout' | 'closed' | 'cancelled') {
    clearTimeout(timer);
    qmp.off('event', onEvent);
    qmp.off('close', onClose);
    finish(r);
  }
  qmp.on('event', onEvent);
  qmp.once('close', onClose);
  return { done, cancel: () => end('cancelled') };
}

/**
 * Unplugs a volume: asks the guest to release the device, waits for it, then closes the block node.
 * A device the guest already unplugged (DeviceNotFound) is done: only the block node is left to close.
 */
export async function unplugDisk(qmp: QmpClient, volumeId: string, timeoutMs: number): Promise<void> {
  // Listening before device_del: QEMU may send the event before the command's answer.
  const wait = waitForUnplug(qmp, volumeId, timeoutMs);
  try {
    await deviceDel(qmp, diskDevice(volumeId));
  } catch (e) {
    wait.cancel();
    if (!(e instanceof QmpError && e.qmpClass === 'DeviceNotFound')) throw e;
  }
  const r = await wait.done;
  if (r === 'timeout') throw new Error(`the guest did not release volume ${volumeId} within ${Math.round(timeoutMs / 1000)} s`);
  if (r === 'closed') throw new Error(`QEMU went away while volume ${volumeId} was being unplugged`);
  await dropBlockNode(qmp, volumeId);
}

/** The volumes whose disk devices exist in the VM (QOM /machine/peripheral), to find ones unplugged while nobody watched. */
export async function pluggedVolumes(qmp: QmpClient): Promise<Set<string>> {
  const items = await qomList(qmp, '/machine/peripheral');
  return new Set(
    items
      .map((i) => i.name)
      .filter((n) => n.startsWith(DEVICE_PREFIX))
      .map((n) => n.slice(DEVICE_PREFIX.length)),
  );
}
