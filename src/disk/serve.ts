/** Serving disk files over NBD: one export per disk, plus read-only exports of its snapshots. */
import { basename } from 'node:path';
import type { Logger } from 'pino';
import { engineDevice, layerDevice } from './device.ts';
import { DiskEngine, type CacheMode } from './engine.ts';
import { NbdServer, type ExportEntry, type ExportSource } from './nbd/server.ts';

/** Exports of a set of open disks. A snapshot is `<export>@<snapshot>`; "" is the first disk. */
export class DiskExports implements ExportSource {
  private readonly disks = new Map<string, DiskEngine>();
  private readonly snapshotCache = new Map<string, ExportEntry>();

  add(name: string, engine: DiskEngine): void {
    if (this.disks.has(name)) throw new Error(`export '${name}' already exists`);
    this.disks.set(name, engine);
  }

  remove(name: string): DiskEngine | undefined {
    const e = this.disks.get(name);
    this.disks.delete(name);
    for (const k of [...this.snapshotCache.keys()]) if (k.startsWith(`${name}@`)) this.snapshotCache.delete(k);
    return e;
  }

  engine(name: string): DiskEngine | undefined {
    return this.disks.get(name);
  }

  names(): string[] {
    return [...this.disks.keys()];
  }

  get(name: string): ExportEntry | undefined {
    if (name === '' && !this.disks.has('')) name = this.disks.keys().next().value ?? '';
    const at = name.lastIndexOf('@');
    if (at > 0) {
      const disk = this.disks.get(name.slice(0, at));
      if (!disk) return undefined;
      const cached = this.snapshotCache.get(name);
      if (cached) return cached;
      try {
        const layer = disk.snapshotLayer(name.slice(at + 1));
        const entry: ExportEntry = { name, description: `snapshot of ${disk.path}`, device: layerDevice(layer, disk.virtualSize) };
        this.snapshotCache.set(name, entry);
        return entry;
      } catch {
        return undefined;
      }
    }
    const e = this.disks.get(name);
    return e ? { name, description: e.path, device: engineDevice(e) } : undefined;
  }

  list(): ExportEntry[] {
    const out: ExportEntry[] = [];
    for (const [name, e] of this.disks) {
      out.push(this.get(name)!);
      for (const s of e.snapshots()) {
        const entry = this.get(`${name}@${s.name}`);
        if (entry) out.push(entry);
      }
    }
    return out;
  }
}

interface ServeOptions {
  file: string;
  socket: string;
  name?: string;
  cache?: CacheMode;
  readOnly?: boolean;
  log?: Logger;
}

export async function serveDisk(o: ServeOptions): Promise<{ server: NbdServer; engine: DiskEngine; close: () => Promise<void> }> {
  const engine = await DiskEngine.open(o.file, { cache: o.cache, readOnly: o.readOnly });
  const exports = new DiskExports();
  exports.add(o.name ?? basename(o.file), engine);
  const server = new NbdServer({ exports, log: o.log });
  try {
    await server.listen(o.socket);
  } catch (e) {
    await engine.close();
    throw e;
  }
  return {
    server,
    engine,
    async close() {
      await server.close();
      await engine.close();
    },
  };
}
