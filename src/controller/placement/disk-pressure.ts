/**
 * The `HostDiskPressure` condition of a host, from its agent's storage report, and when a report
 * is worth recording. Pure.
 *
 * - True, `LowFreeSpace`: free space is below the larger of `diskPressureFreeRatio` of the disk and
 *   `diskPressureMinFreeBytes` (defaults 10% and 2 GiB). It turns True while room is left: the
 *   point is to warn before guests' writes start failing with ENOSPC.
 * - True, `Overcommitted`: free space is above that, but the volumes may still allocate more than
 *   is free: guests filling their thin volumes could run the disk full. Placement never promises more
 *   than free × diskOvercommit, so this happens with an overcommit above 1, with snapshots (their
 *   copy-on-write is not counted), or when something else takes the disk.
 * - False, `Sufficient` otherwise.
 * LowFreeSpace wins when both hold (it is the more urgent); its message says the rest.
 */
import { formatBytes } from '../../common/bytes.ts';
import type { Condition } from '../../model/common.ts';
import type { StorageReport } from '../../model/agent-protocol.ts';
import type { HostStorage } from '../../model/host.ts';

export const DISK_PRESSURE = 'HostDiskPressure';

/** A storage report not worth recording for its own sake is still recorded this long after the last one. */
export const STORAGE_REFRESH_MS = 15_000;

export interface DiskPressurePolicy {
  /** Fraction of the disk that should stay free. */
  diskPressureFreeRatio: number;
  /** Bytes that should stay free whatever the size of the disk. */
  diskPressureMinFreeBytes: number;
}

/** Free space below this is pressure. */
export function pressureThreshold(totalBytes: number, p: DiskPressurePolicy): number {
  return Math.max(Math.ceil(totalBytes * p.diskPressureFreeRatio), p.diskPressureMinFreeBytes);
}

export function diskPressure(s: StorageReport, p: DiskPressurePolicy): Omit<Condition, 'lastTransitionTime'> {
  const threshold = pressureThreshold(s.totalBytes, p);
  const may = `the volumes may still allocate ${formatBytes(s.mayAllocateBytes)}`;
  if (s.freeBytes < threshold) {
    return {
      type: DISK_PRESSURE,
      status: 'True',
      reason: 'LowFreeSpace',
      message: `${formatBytes(s.freeBytes)} free of ${formatBytes(s.totalBytes)}, below the ${formatBytes(threshold)} to keep free; ${may}`,
    };
  }
  if (s.mayAllocateBytes > s.freeBytes) {
    return {
      type: DISK_PRESSURE,
      status: 'True',
      reason: 'Overcommitted',
      message: `${may}, more than the ${formatBytes(s.freeBytes)} free of ${formatBytes(s.totalBytes)}: guests filling their volumes could run the disk full`,
    };
  }
  return { type: DISK_PRESSURE, status: 'False', reason: 'Sufficient', message: `${formatBytes(s.freeBytes)} free of ${formatBytes(s.totalBytes)}; ${may}` };
}

/**
 * Whether a storage report should be written to the host's status. Agents report on every heartbeat;
 * the store gets a write when the figures move by 1% of the disk, when the volumes' sizes change
 * (a volume made, grown or deleted), when the pressure condition would change, and otherwise when
 * anything changed and the recorded figures are STORAGE_REFRESH_MS old.
 */
export function storageWorthRecording(prev: HostStorage | undefined, next: StorageReport, now: Date, p: DiskPressurePolicy): boolean {
  if (!prev) return true;
  if (prev.totalBytes !== next.totalBytes || prev.provisionedBytes !== next.provisionedBytes) return true;
  const step = prev.totalBytes / 100;
  if (Math.abs(prev.freeBytes - next.freeBytes) >= step || Math.abs(prev.mayAllocateBytes - next.mayAllocateBytes) >= step) return true;
  const a = diskPressure(prev, p);
  const b = diskPressure(next, p);
  if (a.status !== b.status || a.reason !== b.reason) return true;
  const changed = prev.freeBytes !== next.freeBytes || prev.mayAllocateBytes !== next.mayAllocateBytes;
  return changed && now.getTime() - Date.parse(prev.reportedAt) >= STORAGE_REFRESH_MS;
}
