import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ensurePrivateDir } from '../common/secrets.ts';

const ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

function readIdFile(path: string): string | undefined {
  try {
    const v = readFileSync(path, 'utf8').trim().toLowerCase();
    return v && !/^0+$|^[0-]+$/.test(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The id a machine would get from its own identity: the systemd machine id and the SMBIOS system
 * UUID, with the agent's data directory so that several agents on one machine (tests, benchmarks)
 * differ. Reinstalling the agent at the same place on the same machine yields the same id, so the
 * controller recognises the machine and asks an operator before binding it to a new key.
 */
export function derivedHostId(dataDir: string, sources = { machineId: '/etc/machine-id', smbiosUuid: '/sys/class/dmi/id/product_uuid' }): string | undefined {
  const machineId = readIdFile(sources.machineId);
  const smbios = readIdFile(sources.smbiosUuid);
  if (!machineId && !smbios) return undefined;
  const h = createHash('sha256')
    .update(`outrig-host\0${machineId ?? ''}\0${smbios ?? ''}\0${resolve(dataDir)}`)
    .digest('hex');
  return `h-${h.slice(0, 16)}`;
}

/** The host's stable id: kept in the agent's data directory once made, so it never changes under a running cluster. */
export async function loadHostId(path: string): Promise<string> {
  if (existsSync(path)) {
    const id = (await readFile(path, 'utf8')).trim();
    if (ID.test(id)) {
      await chmod(path, 0o600);
      return id;
    }
  }
  const id = derivedHostId(dirname(path)) ?? `h-${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  await ensurePrivateDir(dirname(path));
  await writeFile(path, id + '\n', { mode: 0o600 });
  await chmod(path, 0o600);
  return id;
}
