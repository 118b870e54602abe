/**
 * Builds the tiny bootable test guest from Debian packages only: the host's Debian kernel
 * (linux-image-cloud-amd64) and a busybox-static initramfs that brings up eth0, serves HTTP
 * on port 80 and prints a ready marker on the serial console.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildCpio, type CpioEntry } from './cpio.ts';
import { loadOrder, parseModulesBuiltin, parseModulesDep } from './modules.ts';
import { TEST_GUEST_READY_MARKER, testGuestInit } from './init-script.ts';

/** Bumped whenever the produced image changes, so cached builds are redone. */
const BUILDER_VERSION = 9;

const TEST_GUEST_MODULES = ['virtio_pci', 'virtio_net', 'virtio_blk', 'virtio_balloon', 'button', 'evdev'];

export interface ImageFile {
  name: string;
  sha256: string;
  size: number;
}

export interface GuestImageManifest {
  name: string;
  kind: 'kernel';
  cmdline: string;
  readyMarker: string;
  guestPorts: number[];
  kernelVersion: string;
  builderVersion: number;
  files: { kernel: ImageFile; initrd: ImageFile };
}

interface BuildTestGuestOptions {
  outDir: string;
  bootDir?: string;
  modulesRoot?: string;
  busyboxPath?: string;
  kernelVersion?: string;
  force?: boolean;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Picks the newest kernel in /boot that has a matching module tree. */
export async function findGuestKernel(bootDir = '/boot', modulesRoot = '/lib/modules'): Promise<string> {
  const names = existsSync(bootDir) ? await readdir(bootDir) : [];
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => existsSync(join(modulesRoot, v, 'modules.dep')))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const v = versions.pop();
  if (!v) {
    throw new Error(
      `no guest kernel found: need ${bootDir}/vmlinuz-<version> with ${modulesRoot}/<version>/modules.dep ` +
        `(Debian: apt-get install linux-image-cloud-amd64)`,
    );
  }
  return v;
}

export async function buildTestGuest(opts: BuildTestGuestOptions): Promise<GuestImageManifest> {
  const bootDir = opts.bootDir ?? '/boot';
  const modulesRoot = opts.modulesRoot ?? '/lib/modules';
  const busyboxPath = opts.busyboxPath ?? '/bin/busybox';
  const version = opts.kernelVersion ?? (await findGuestKernel(bootDir, modulesRoot));
  const manifestPath = join(opts.outDir, 'image.json');

  if (!opts.force && existsSync(manifestPath)) {
    const old = JSON.parse(await readFile(manifestPath, 'utf8')) as GuestImageManifest;
    if (old.kernelVersion === version && old.builderVersion === BUILDER_VERSION) return old;
  }
  if (!existsSync(busyboxPath)) throw new Error(`${busyboxPath} not found (Debian: apt-get install busybox-static)`);

  const modDir = join(modulesRoot, version);
  const index = parseModulesDep(await readFile(join(modDir, 'modules.dep'), 'utf8'));
  const builtinPath = join(modDir, 'modules.builtin');
  const builtin = existsSync(builtinPath) ? parseModulesBuiltin(await readFile(builtinPath, 'utf8')) : new Set<string>();
  const order = loadOrder(index, TEST_GUEST_MODULES, builtin);

  const entries: CpioEntry[] = [
    ...['bin', 'sbin', 'dev', 'proc', 'sys', 'tmp', 'www', 'lib', 'lib/modules'].map((p) => ({ type: 'dir' as const, path: p })),
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'file', path: 'bin/busybox', data: await readFile(busyboxPath), mode: 0o755 },
    { type: 'file', path: 'init', data: Buffer.from(testGuestInit(order)), mode: 0o755 },
  ];
  for (const m of order) {
    const rel = index.path.get(m)!;
    if (!rel.endsWith('.ko')) {
      throw new Error(`kernel module ${rel} is compressed; busybox insmod needs plain .ko files`);
    }
    entries.push({ type: 'file', path: `lib/modules/${m}.ko`, data: await readFile(join(modDir, rel)) });
  }

  const kernel = await readFile(join(bootDir, `vmlinuz-${version}`));
  const initrd = gzipSync(buildCpio(entries), { level: 9 });
  const manifest: GuestImageManifest = {
    name: 'test',
    kind: 'kernel',
    cmdline: 'console=ttyS0 quiet panic=-1',
    readyMarker: TEST_GUEST_READY_MARKER,
    guestPorts: [80],
    kernelVersion: version,
    builderVersion: BUILDER_VERSION,
    files: {
      kernel: { name: 'vmlinuz', sha256: sha256(kernel), size: kernel.length },
      initrd: { name: 'initrd.img', sha256: sha256(initrd), size: initrd.length },
    },
  };
  await mkdir(opts.outDir, { recursive: true });
  // Write-then-rename so a crash never leaves a manifest that points at half-written files.
  for (const [name, data] of [
    ['vmlinuz', kernel],
    ['initrd.img', initrd],
    ['image.json', Buffer.from(JSON.stringify(manifest, null, 2) + '\n')],
  ] as const) {
    await writeFile(join(opts.outDir, name + '.tmp'), data);
    await rename(join(opts.outDir, name + '.tmp'), join(opts.outDir, name));
  }
  return manifest;
}
