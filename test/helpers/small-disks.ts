/**
 * Small disk images for backup tests, made without root, loop devices or mounts: an ext4 file
 * system in one partition, one on the whole disk (no partition table), and a disk of bytes no
 * file system claims.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Writes `files` (relative path → content) under `dir`. */
function populate(dir: string, files: Record<string, string | Buffer>): void {
  mkdirSync(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), content);
  }
}

/** A DOS-partitioned disk of `sizeMiB` with an ext4 file system holding `files` in partition 1 (from 1 MiB). */
export function partitionedExt4(image: string, sizeMiB: number, files: Record<string, string | Buffer>): void {
  const dir = `${image}.files`;
  populate(dir, files);
  execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
  execFileSync('sfdisk', ['-q', image], { input: 'start=2048, type=83\n' });
  execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'offset=1048576', '-d', dir, image, `${sizeMiB - 1}M`]);
}

/** `mkfs.ext4 disk.raw` with no partition table: the file system starts at byte 0. */
export function wholeDiskExt4(image: string, sizeMiB: number, files: Record<string, string | Buffer>, o: { uuid?: string; label?: string } = {}): void {
  const dir = `${image}.files`;
  populate(dir, files);
  execFileSync('truncate', ['-s', `${sizeMiB}M`, image]);
  execFileSync('mkfs.ext4', ['-q', '-F', ...(o.uuid ? ['-U', o.uuid] : []), ...(o.label ? ['-L', o.label] : []), '-d', dir, image]);
}

/** Bytes no file system claims (a deterministic pattern, with a run of zeroes in the middle), `sizeMiB` long. */
export function unrecognisedDisk(image: string, sizeMiB: number): Buffer {
  const b = Buffer.alloc(sizeMiB * 1024 * 1024);
  let x = 0x12345678;
  for (let i = 0; i < b.length; i += 4) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  b.fill(0, b.length / 4, b.length / 2);
  writeFileSync(image, b);
  return b;
}
