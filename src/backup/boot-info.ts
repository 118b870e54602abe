/**
 * What a disk boots with and where its filesystems are mounted, read from outside (pure): the boot
 * loader from the boot sector's code and the files it keeps on the filesystems, the mount points
 * from the root filesystem's /etc/fstab, matched to partitions by UUID, label or PARTUUID.
 */
import type { DiskLayout } from './disk-layout.ts';

export interface BootLoader {
  /** `grub` finds its root by filesystem UUID (kept by a rebuild); `extlinux` needs installing again after one. */
  kind: 'grub' | 'extlinux' | 'unknown';
  /** The partition whose filesystem holds its configuration, and the path there. */
  partition?: number;
  config?: string;
}

export interface MountPoint {
  partition: number;
  mountPoint: string;
  options?: string;
}

/** A filesystem's files, as far as this module needs to look at them. */
export interface FsView {
  partition: number;
  exists(path: string): boolean;
  read(path: string): string | undefined;
}

const GRUB_CONFIGS = ['/boot/grub/grub.cfg', '/grub/grub.cfg'];
const EXTLINUX = [
  { loader: '/boot/syslinux/ldlinux.sys', configs: ['/boot/syslinux/extlinux.conf', '/boot/syslinux/syslinux.cfg'] },
  { loader: '/boot/extlinux/ldlinux.sys', configs: ['/boot/extlinux/extlinux.conf'] },
  { loader: '/syslinux/ldlinux.sys', configs: ['/syslinux/extlinux.conf', '/syslinux/syslinux.cfg'] },
  { loader: '/extlinux/ldlinux.sys', configs: ['/extlinux/extlinux.conf'] },
];

/** The boot loader: GRUB's boot.img says "GRUB" in the boot sector; extlinux keeps ldlinux.sys on a filesystem. */
export function detectBootLoader(bootSector: Uint8Array, fss: FsView[]): BootLoader {
  const code = Buffer.from(bootSector.subarray(0, 440)).toString('latin1');
  for (const fs of fss) {
    for (const x of EXTLINUX) {
      if (fs.exists(x.loader)) return { kind: 'extlinux', partition: fs.partition, config: x.configs.find((c) => fs.exists(c)) };
    }
  }
  if (code.includes('GRUB')) {
    for (const fs of fss) {
      const config = GRUB_CONFIGS.find((c) => fs.exists(c));
      if (config) return { kind: 'grub', partition: fs.partition, config };
    }
    return { kind: 'grub' };
  }
  return { kind: 'unknown' };
}

/** fstab lines (device, mount point, type, options) whose device is a partition of this disk. */
export function mountPoints(fstab: string, layout: DiskLayout): MountPoint[] {
  const out: MountPoint[] = [];
  for (const raw of fstab.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [spec, mountPoint, , options] = line.split(/\s+/);
    if (!spec || !mountPoint?.startsWith('/')) continue;
    const [key, value] = spec.includes('=')
      ? [spec.slice(0, spec.indexOf('=')).toUpperCase(), spec.slice(spec.indexOf('=') + 1).replace(/^"|"$/g, '')]
      : ['', spec];
    const fs =
      key === 'UUID'
        ? layout.filesystems.find((f) => f.uuid?.toLowerCase() === value.toLowerCase())
        : key === 'LABEL'
          ? layout.filesystems.find((f) => f.label === value)
          : undefined;
    const part = fs ? fs.partition : key === 'PARTUUID' ? layout.partitions.find((p) => p.uuid?.toLowerCase() === value.toLowerCase())?.index : undefined;
    if (part !== undefined) out.push({ partition: part, mountPoint, ...(options ? { options } : {}) });
  }
  return out;
}

/** Mount points from the first filesystem that has an /etc/fstab naming this disk's filesystems. */
export function detectMounts(fss: FsView[], layout: DiskLayout): MountPoint[] {
  for (const fs of fss) {
    const fstab = fs.read('/etc/fstab');
    if (fstab === undefined) continue;
    const m = mountPoints(fstab, layout);
    if (m.length) return m;
  }
  return [];
}
