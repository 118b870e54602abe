import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The host's stable id, kept in the agent's data directory so it survives agent restarts and
 * upgrades. (Host discovery and trust derive it from the machine itself; see the discovery issue.)
 */
export async function loadHostId(path: string): Promise<string> {
  if (existsSync(path)) {
    const id = (await readFile(path, 'utf8')).trim();
    if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(id)) return id;
  }
  const id = `h-${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, id + '\n');
  return id;
}
