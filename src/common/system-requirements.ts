/**
 * The system packages Outrig needs, how to tell whether each is present, and installing them
 * with apt where we can (root on Debian) or saying the exact command where we cannot.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, readSync, closeSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Requirement {
  /** Debian package that provides it. */
  pkg: string;
  what: string;
  present: () => boolean;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));
}

/** A static ELF has no PT_INTERP; its first page then never names the dynamic loader. */
function isStaticBinary(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, 4).toString('latin1') === '\x7fELF' && !buf.includes('ld-linux');
  } finally {
    closeSync(fd);
  }
}

function hasGuestKernel(): boolean {
  if (!existsSync('/boot')) return false;
  return readdirSync('/boot')
    .filter((f) => f.startsWith('vmlinuz-'))
    .some((f) => existsSync(join('/lib/modules', f.slice('vmlinuz-'.length), 'modules.dep')));
}

export const VM_REQUIREMENTS: Requirement[] = [
  { pkg: 'qemu-system-x86', what: 'qemu-system-x86_64', present: () => onPath('qemu-system-x86_64') },
  { pkg: 'qemu-utils', what: 'qemu-img', present: () => onPath('qemu-img') },
  { pkg: 'busybox-static', what: 'a static /bin/busybox for the test guest', present: () => isStaticBinary('/bin/busybox') },
  { pkg: 'linux-image-cloud-amd64', what: 'a guest kernel with modules (/boot/vmlinuz-*)', present: hasGuestKernel },
];

/** Real NBD clients the disk tests drive (qemu-io and qemu-img come with qemu-utils). */
const DISK_TEST_REQUIREMENTS: Requirement[] = [
  { pkg: 'qemu-utils', what: 'qemu-io', present: () => onPath('qemu-io') },
  { pkg: 'libnbd-bin', what: 'nbdinfo and nbdcopy', present: () => onPath('nbdinfo') && onPath('nbdcopy') },
];

/** Building the bootable test disk (no loop devices, no mounts). */
const DISK_IMAGE_REQUIREMENTS: Requirement[] = [
  { pkg: 'fdisk', what: 'sfdisk', present: () => onPath('sfdisk') },
  { pkg: 'e2fsprogs', what: 'mkfs.ext4', present: () => onPath('mkfs.ext4') },
  { pkg: 'grub2-common', what: 'grub-mkimage', present: () => onPath('grub-mkimage') },
  { pkg: 'grub-pc-bin', what: 'GRUB for BIOS (boot.img)', present: () => existsSync('/usr/lib/grub/i386-pc/boot.img') },
];

/** extlinux put back on a rebuilt filesystem (bare-metal and system-state recovery of extlinux disks). */
export const EXTLINUX_REQUIREMENTS: Requirement[] = [
  { pkg: 'extlinux', what: 'extlinux', present: () => onPath('extlinux') },
  { pkg: 'mount', what: 'losetup and mount', present: () => onPath('losetup') && onPath('mount') },
];

/** The extlinux variant of the test disk: syslinux's MBR boot code. */
const EXTLINUX_DISK_REQUIREMENTS: Requirement[] = [
  ...EXTLINUX_REQUIREMENTS,
  { pkg: 'syslinux-common', what: "syslinux's mbr.bin", present: () => existsSync('/usr/lib/syslinux/mbr/mbr.bin') },
];

/** Backups: extended attributes and ACLs are read and written with Debian's attr tools. */
export const BACKUP_REQUIREMENTS: Requirement[] = [
  { pkg: 'attr', what: 'getfattr and setfattr', present: () => onPath('getfattr') && onPath('setfattr') },
  { pkg: 'acl', what: 'getfacl and setfacl (the backup tests)', present: () => onPath('setfacl') },
];

/** The sandbox that tools reading guest data run in (src/sandbox). */
const SANDBOX_REQUIREMENTS: Requirement[] = [
  { pkg: 'bubblewrap', what: 'bwrap (the sandbox for reading guest disks)', present: () => onPath('bwrap') },
  { pkg: 'util-linux', what: 'setpriv and prlimit', present: () => onPath('setpriv') && onPath('prlimit') },
];

/** What an agent needs to back up and rebuild volumes (NBD copies, partition tables written, ext filesystems read in the sandbox and made from outside). */
export const VOLUME_BACKUP_REQUIREMENTS: Requirement[] = [
  { pkg: 'libnbd-bin', what: 'nbdcopy', present: () => onPath('nbdcopy') },
  { pkg: 'fdisk', what: 'sfdisk', present: () => onPath('sfdisk') },
  { pkg: 'e2fsprogs', what: 'mkfs.ext4', present: () => onPath('mkfs.ext4') },
  ...SANDBOX_REQUIREMENTS,
  BACKUP_REQUIREMENTS[0]!,
];

/** 802.1X port authentication: the switch side (port-controller) and the host side (agent --dedicated-port). */
export const PORT_AUTH_REQUIREMENTS: Requirement[] = [
  { pkg: 'hostapd', what: 'hostapd and hostapd_cli (the wired 802.1X authenticator)', present: () => onPath('hostapd') && onPath('hostapd_cli') },
  { pkg: 'freeradius', what: 'FreeRADIUS (EAP-TLS for port authentication)', present: () => onPath('freeradius') },
  { pkg: 'wpasupplicant', what: 'wpa_supplicant (the host side of 802.1X)', present: () => onPath('wpa_supplicant') },
];

/** DHCP on networks: each host runs dnsmasq for the networks with DHCP on. */
export const DHCP_REQUIREMENTS: Requirement[] = [{ pkg: 'dnsmasq-base', what: 'dnsmasq (DHCP on networks)', present: () => onPath('dnsmasq') }];

/** The host firewall every host carrying a network runs (src/network/firewall.ts). */
export const FIREWALL_REQUIREMENTS: Requirement[] = [{ pkg: 'nftables', what: 'nft (the host firewall of networks)', present: () => onPath('nft') }];

/** The hostile-guest tests: small Python scripts send raw frames and stand in for guests' NICs. */
const NETWORK_TEST_REQUIREMENTS: Requirement[] = [{ pkg: 'python3', what: 'python3 (the hostile-guest network tests)', present: () => onPath('python3') }];

/** What the benchmarks use on top of the tests. */
const BENCH_REQUIREMENTS: Requirement[] = [{ pkg: 'fio', what: 'fio (with its NBD engine)', present: () => onPath('fio') }];

/**
 * What the commands the README documents after `npm start` need beyond VMs: `npm start` installs
 * these (the `up` set), and `outrig up` run by hand says once, at start, which are missing.
 */
const UP_FEATURE_REQUIREMENTS: { feature: string; reqs: Requirement[] }[] = [
  { feature: 'networks (a host firewall each)', reqs: FIREWALL_REQUIREMENTS },
  { feature: 'DHCP on networks (--dhcp)', reqs: DHCP_REQUIREMENTS },
  { feature: 'backups of instances and volumes', reqs: VOLUME_BACKUP_REQUIREMENTS },
  { feature: 'image build-test --disk', reqs: DISK_IMAGE_REQUIREMENTS },
];

/** One notice naming the features that will fail and the one command that fixes them all; undefined when nothing lacks. */
export function missingFeaturesNotice(groups = UP_FEATURE_REQUIREMENTS): string | undefined {
  const lacking = groups.map((g) => ({ ...g, need: missing(g.reqs) })).filter((g) => g.need.length);
  if (!lacking.length) return undefined;
  const pkgs = [...new Set(lacking.flatMap((g) => g.need.map((r) => r.pkg)))];
  return (
    `this machine lacks what some features need (they fail with this same list until installed):\n` +
    lacking.map((g) => `  - ${g.feature}: ${g.need.map((r) => `${r.what} (${r.pkg})`).join(', ')}`).join('\n') +
    `\ninstall them with (or run 'npm start' as root, which does):\n  sudo sh -c '${installCommand(pkgs)}'`
  );
}

export const REQUIREMENT_SETS: Record<string, Requirement[]> = {
  vm: VM_REQUIREMENTS,
  up: [...VM_REQUIREMENTS, ...UP_FEATURE_REQUIREMENTS.flatMap((g) => g.reqs)],
  'disk-tests': [...DISK_TEST_REQUIREMENTS, ...DISK_IMAGE_REQUIREMENTS, ...EXTLINUX_DISK_REQUIREMENTS],
  bench: BENCH_REQUIREMENTS,
  backup: [...BACKUP_REQUIREMENTS, ...SANDBOX_REQUIREMENTS],
  'port-auth': PORT_AUTH_REQUIREMENTS,
  dhcp: DHCP_REQUIREMENTS,
  firewall: FIREWALL_REQUIREMENTS,
  'network-tests': NETWORK_TEST_REQUIREMENTS,
  'bench-backup': [{ pkg: 'restic', what: 'restic (the baseline of bench:backup)', present: () => onPath('restic') }],
};

export function missing(reqs: Requirement[]): Requirement[] {
  return reqs.filter((r) => !r.present());
}

/** A clear error naming the Debian packages this machine lacks for `purpose` (instead of a spawn ENOENT half-way). */
export function requireTools(reqs: Requirement[], purpose: string): void {
  const lack = missing(reqs);
  if (lack.length) throw new Error(`this machine lacks what ${purpose} needs: ${lack.map((r) => `${r.what} (Debian package ${r.pkg})`).join(', ')}`);
}

function installCommand(pkgs: string[]): string {
  return `apt-get update && apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
}

/**
 * Makes sure the requirements are met. Installs with apt-get when running as root on a system
 * that has it; otherwise throws an error that says exactly what to run.
 */
export function ensureRequirements(reqs: Requirement[], log: (s: string) => void = (s) => process.stderr.write(s + '\n')): void {
  const need = missing(reqs);
  if (need.length === 0) return;
  const pkgs = [...new Set(need.map((r) => r.pkg))];
  const list = need.map((r) => `  - ${r.what} (Debian package ${r.pkg})`).join('\n');
  const canInstall = process.getuid?.() === 0 && onPath('apt-get');
  if (!canInstall) {
    throw new Error(`missing system packages:\n${list}\ninstall them with:\n  sudo sh -c '${installCommand(pkgs)}'`);
  }
  log(`installing system packages: ${pkgs.join(' ')} (about a minute)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...pkgs],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    if (r.status !== 0) throw new Error(`apt-get ${args[0]} failed (exit ${r.status}); run it yourself:\n  ${installCommand(pkgs)}`);
  }
  const still = missing(reqs);
  if (still.length) throw new Error(`still missing after install: ${still.map((r) => r.what).join(', ')}`);
}
