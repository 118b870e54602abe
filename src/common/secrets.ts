import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
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

export async function readSecret(path: string): Promise<string> {
  const v = (await readFile(path, 'utf8')).trim();
  if (!v) throw new Error(`${path} is empty`);
  return v;
}
