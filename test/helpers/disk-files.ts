/** Reading a disk image's filesystems from outside, with debugfs: files with their checksums, and single files. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function debugfs(image: string, offset: number, request: string, write = false): string {
  return execFileSync('debugfs', [...(write ? ['-w'] : []), '-R', request, `${image}?offset=${offset}`], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
}

/** Every file of the filesystem at `offset` with its mode and checksum. */
export function filesOf(image: string, offset: number): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), 'outrig-dump-'));
  try {
    execFileSync('debugfs', ['-R', `rdump / ${dir}`, `${image}?offset=${offset}`], { stdio: 'ignore' });
    const out: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else out[p.slice(dir.length)] = `${(statSync(p).mode & 0o7777).toString(8)} ${createHash('sha256').update(readFileSync(p)).digest('hex')}`;
      }
    };
    walk(dir);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
