/**
 * Decides whether KVM can really run guests on this host. /dev/kvm being present proves nothing
 * (under nested virtualization it opens, then guests abort or hang), so the probe boots real code:
 *   1. a 512-byte boot sector that writes a marker to the serial port, under KVM with `-cpu host`;
 *   2. the guest kernel with a tiny initramfs that prints a marker and powers off.
 * The answer is cached per kernel boot (boot_id) and QEMU version.
 */
import { spawn } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildCpio } from './guest-image/cpio.ts';
import { findGuestKernel } from './guest-image/test-guest.ts';

export interface KvmProbeResult {
  usable: boolean;
  reason: string;
  bootId: string;
  qemuVersion: string;
  checkedAt: string;
  durationMs: number;
}

const BOOT_MARKER = 'OUTRIG-KVM-OK';
const LINUX_MARKER = 'OUTRIG-KVM-LINUX-OK';

/** Real-mode code: print BOOT_MARKER on COM1 (port 0x3f8), then halt. Loaded by the BIOS at 0:7c00. */
export function bootSector(): Buffer {
  const code = Buffer.from([
    0x31,
    0xc0, //       xor ax, ax
    0x8e,
    0xd8, //       mov ds, ax
    0xba,
    0xf8,
    0x03, // mov dx, 0x3f8
    0xbe,
    0x17,
    0x7c, // mov si, msg (0x7c00 + 23)
    0xfc, //             cld
    0xac, //             next: lodsb
    0x84,
    0xc0, //       test al, al
    0x74,
    0x03, //       jz done
    0xee, //             out dx, al
    0xeb,
    0xf8, //       jmp next
    0xfa, //             done: cli
    0xf4, //             hlt
    0xeb,
    0xfd, //       jmp hlt
  ]);
  const img = Buffer.alloc(512);
  code.copy(img, 0);
  Buffer.from(`${BOOT_MARKER}\r\n\0`, 'ascii').copy(img, code.length);
  img[510] = 0x55;
  img[511] = 0xaa;
  return img;
}

function miniInitramfs(busybox: Buffer): Buffer {
  const init = `#!/bin/busybox sh\n/bin/busybox echo ${LINUX_MARKER}\n/bin/busybox poweroff -f\n`;
  return gzipSync(
    buildCpio([
      { type: 'dir', path: 'bin' },
      { type: 'dir', path: 'dev' },
      { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
      { type: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
      { type: 'file', path: 'init', data: Buffer.from(init), mode: 0o755 },
    ]),
  );
}

/** Runs QEMU in the foreground until `marker` shows in its serial output, it exits, or time runs out. */
async function runUntilMarker(qemu: string, args: string[], serialPath: string, marker: string, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  const child = spawn(qemu, [...args, '-serial', `file:${serialPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.once('close', res));
  child.once('error', (e) => (stderr += e.message));
  const deadline = Date.now() + timeoutMs;
  let done: number | null | undefined;
  exited.then((c) => (done = c));
  try {
    while (Date.now() < deadline) {
      const out = existsSync(serialPath) ? await readFile(serialPath, 'utf8') : '';
      if (out.includes(marker)) return { ok: true, detail: 'marker seen' };
      if (done !== undefined) {
        const lines = stderr.trim().split('\n').filter(Boolean);
        const why = lines.find((l) => /error/i.test(l)) ?? lines.pop() ?? 'no error output';
        return { ok: false, detail: `qemu exited (${done ?? 'signal'}) before the guest ran: ${why}` };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { ok: false, detail: `the guest printed nothing on its serial console within ${timeoutMs / 1000}s` };
  } finally {
    if (done === undefined) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

async function qemuVersion(qemu: string): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(qemu, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('error', () => resolve('unknown'));
    c.on('close', () => resolve(out.split('\n')[0]?.trim() || 'unknown'));
  });
}

interface ProbeOptions {
  cacheFile: string;
  qemuBinary?: string;
  devKvm?: string;
  busyboxPath?: string;
  timeoutMs?: number;
  /** Skip the cache and probe again. */
  fresh?: boolean;
  /** Only for self-tests: run the same probe guests under TCG to prove the probe itself works. */
  accel?: 'kvm' | 'tcg';
}

export async function probeKvm(opts: ProbeOptions): Promise<KvmProbeResult> {
  const qemu = opts.qemuBinary ?? 'qemu-system-x86_64';
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
  const version = await qemuVersion(qemu);
  if (!opts.fresh && existsSync(opts.cacheFile)) {
    try {
      const cached = JSON.parse(await readFile(opts.cacheFile, 'utf8')) as KvmProbeResult;
      if (cached.bootId === bootId && cached.qemuVersion === version) return cached;
    } catch {
      // A damaged cache is just probed again.
    }
  }
  const started = Date.now();
  const finish = async (usable: boolean, reason: string): Promise<KvmProbeResult> => {
    const r: KvmProbeResult = {
      usable,
      reason,
      bootId,
      qemuVersion: version,
      checkedAt: new Date().toISOString(),
      durationMs: Date.now() - started,
    };
    await mkdir(dirname(opts.cacheFile), { recursive: true });
    await writeFile(opts.cacheFile, JSON.stringify(r, null, 2) + '\n');
    return r;
  };

  const accel = opts.accel ?? 'kvm';
  const devKvm = opts.devKvm ?? '/dev/kvm';
  if (accel === 'kvm') {
    try {
      await access(devKvm, constants.R_OK | constants.W_OK);
    } catch (e) {
      return finish(false, `${devKvm} is not usable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  const timeoutMs = opts.timeoutMs ?? 15000;
  const work = await mkdtemp(join(tmpdir(), 'outrig-kvm-probe-'));
  try {
    const common = ['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot', '-cpu', accel === 'kvm' ? 'host' : 'max'];
    await writeFile(join(work, 'boot.bin'), bootSector());
    const stage1 = await runUntilMarker(
      qemu,
      ['-machine', `pc,accel=${accel}`, ...common, '-m', '16', '-drive', `file=${join(work, 'boot.bin')},format=raw,if=ide`],
      join(work, 'stage1.log'),
      BOOT_MARKER,
      Math.min(timeoutMs, 5000),
    );
    if (!stage1.ok) return finish(false, `boot sector under ${accel.toUpperCase()}: ${stage1.detail}`);

    let kernel: string;
    try {
      kernel = `/boot/vmlinuz-${await findGuestKernel()}`;
    } catch (e) {
      return finish(true, `boot sector ran under KVM; Linux boot not verified: ${(e as Error).message}`);
    }
    const busybox = opts.busyboxPath ?? '/bin/busybox';
    if (!existsSync(busybox)) return finish(true, `boot sector ran under KVM; Linux boot not verified: no ${busybox}`);
    await writeFile(join(work, 'initrd.img'), miniInitramfs(await readFile(busybox)));
    const stage2 = await runUntilMarker(
      qemu,
      [
        '-machine',
        `q35,accel=${accel}`,
        ...common,
        '-m',
        '128',
        '-kernel',
        kernel,
        '-initrd',
        join(work, 'initrd.img'),
        '-append',
        'console=ttyS0 panic=-1 quiet',
      ],
      join(work, 'stage2.log'),
      LINUX_MARKER,
      timeoutMs,
    );
    if (!stage2.ok) return finish(false, `Linux guest under ${accel.toUpperCase()}: ${stage2.detail}`);
    return finish(true, `a Linux guest booted under ${accel.toUpperCase()} in ${Date.now() - started} ms`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
