/**
 * extlinux (re)installed on an ext filesystem inside a disk image. extlinux's volume boot record
 * holds the sector list of ldlinux.sys, which a filesystem rebuilt file by file (or a file
 * rewritten by debugfs) no longer matches: the disk then hangs before the first message
 * (shared/research/bootable-disk.md). `extlinux --install` writes both again, and it works only on
 * a mounted filesystem, so the partition is attached to a loop device at its offset, mounted
 * (nosuid, nodev, noexec) and released again, whatever happens.
 *
 * syslinux also cannot load a file with holes ("Loading /boot/vmlinuz failed: I/O error"), and
 * `mkfs.ext4 -d` stores all-zero blocks as holes: the files extlinux loads are filled in first.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { EXTLINUX_REQUIREMENTS, requireTools } from '../common/system-requirements.ts';

const run = promisify(execFile);

/**
 * The files an extlinux configuration makes syslinux load (kernels, initrds, modules), as absolute
 * paths in its filesystem; relative ones are relative to the configuration's directory. Pure.
 */
export function filesLoadedBy(config: string, configDir: string): string[] {
  const out = new Set<string>();
  const add = (p: string) => out.add(p.startsWith('/') ? posix.normalize(p) : posix.join(configDir, p));
  for (const raw of config.split('\n')) {
    const line = raw.trim();
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.toUpperCase();
    const value = m[2]!.trim();
    if (['LINUX', 'KERNEL', 'UI', 'COM32', 'FDT'].includes(key)) add(value.split(/\s+/)[0]!);
    else if (key === 'INITRD') for (const p of value.split(',')) add(p.trim());
    else if (key === 'APPEND') {
      const initrd = /(?:^|\s)initrd=(\S+)/.exec(value);
      if (initrd) for (const p of initrd[1]!.split(',')) add(p);
    }
  }
  return [...out].filter((p) => p !== '/');
}

/** A file with holes gets them written as zeros, in place (same inode, times put back). */
async function fillHoles(path: string): Promise<boolean> {
  const st = statSync(path);
  if (!st.isFile() || st.blocks * 512 >= st.size) return false;
  const data = readFileSync(path);
  const fd = await open(path, 'r+');
  try {
    await fd.write(data, 0, data.length, 0);
    await fd.sync();
    await fd.utimes(st.atime, st.mtime);
  } finally {
    await fd.close();
  }
  return true;
}

/**
 * Installs extlinux into `dir` (where ldlinux.sys lives, e.g. /boot/syslinux) of the filesystem
 * at `offset` of the image; returns the files whose holes were filled.
 */
export async function installExtlinux(image: string, fs: { offset: number; sizeBytes: number }, dir: string, config?: string): Promise<{ filled: string[] }> {
  requireTools(EXTLINUX_REQUIREMENTS, 'installing extlinux');
  const loop = (await run('losetup', ['--find', '--show', '--offset', String(fs.offset), '--sizelimit', String(fs.sizeBytes), image])).stdout.trim();
  const mnt = mkdtempSync(join(tmpdir(), 'outrig-extlinux-'));
  const filled: string[] = [];
  try {
    await run('mount', ['-t', 'ext4', '-o', 'nosuid,nodev,noexec', loop, mnt]);
    try {
      const inFs = (p: string) => join(mnt, p);
      const configPath = config ? inFs(config) : undefined;
      const loaded = configPath && existsSync(configPath) ? filesLoadedBy(readFileSync(configPath, 'utf8'), dirname(config!)) : [];
      const moduleFiles = existsSync(inFs(dir)) ? readdirSync(inFs(dir)).map((f) => posix.join(dir, f)) : [];
      for (const p of [...loaded, ...moduleFiles]) if (existsSync(inFs(p)) && (await fillHoles(inFs(p)))) filled.push(p);
      await run('extlinux', ['--install', inFs(dir)]).catch((e: Error & { stderr?: string }) => {
        throw new Error(`extlinux --install ${dir} failed: ${e.stderr?.trim() || e.message}`, { cause: e });
      });
    } finally {
      await run('umount', [mnt]);
    }
  } finally {
    await run('losetup', ['--detach', loop]);
    rmSync(mnt, { recursive: true, force: true });
  }
  return { filled };
}
