import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Reads a secret file, or creates it with a fresh random value, readable by the owner only. */
export async function loadOrCreateSecret(path: string, bytes = 32): Promise<string> {
  if (existsSync(path)) {
    const v = (await readFile(path, 'utf8')).trim();
    if (v) return v;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const v = randomBytes(bytes).toString('hex');
  await writeFile(path, v + '\n', { mode: 0o600, flag: 'w' });
  await chmod(path, 0o600);
  return v;
}

/**
 * A directory only its owner may enter (0700): made if missing, tightened if an earlier version
 * (or a default umask) left it open. Data, logs and identities under it are then private too.
 */
export async function ensurePrivateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  // A shared directory such as /tmp (sticky bit) is nobody's to close: refuse it as a data directory.
  if ((await stat(path)).mode & 0o1000)
    throw new Error(`${path} is a shared directory (sticky bit set); give Outrig a directory of its own (OUTRIG_DATA, --data)`);
  await chmod(path, 0o700);
}

/** A file only its owner may read (0600): created empty if missing, tightened if it exists. Synchronous (loggers open files at start). */
export function ensurePrivateFileSync(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}
