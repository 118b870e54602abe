/**
 * The agent's storage manager: keeps this host's diskd running (a separate, detached process, so
 * guests' disk I/O outlives agent restarts) and drives it over its control socket.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, closeSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { diskdPaths, type DiskdPaths, type VolumeSource, type VolumeState } from '../disk/index.ts';
import type { DiskSpace } from '../disk/index.ts';
import { isLiveProcessWith } from '../hypervisor/index.ts';

const OUTRIG_BIN = fileURLToPath(new URL('../../bin/outrig.js', import.meta.url));

export class DiskdError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class Storage {
  readonly paths: DiskdPaths;

  constructor(
    dir: string,
    private readonly log: Logger,
  ) {
    this.paths = diskdPaths(dir);
  }

  get nbdSocket(): string {
    return this.paths.nbd;
  }

  private async pid(): Promise<number | null> {
    if (!existsSync(this.paths.pidfile)) return null;
    const pid = Number(readFileSync(this.paths.pidfile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && (await isLiveProcessWith(pid, this.paths.dir)) ? pid : null;
  }

  /** Starts diskd unless one already runs for this directory; resolves once it answers. */
  async ensureRunning(): Promise<void> {
    if ((await this.pid()) && (await this.healthy())) return;
    mkdirSync(this.paths.dir, { recursive: true, mode: 0o700 });
    const logFd = openSync(join(this.paths.dir, 'diskd.log'), 'a');
    const child = spawn(process.execPath, [OUTRIG_BIN, 'diskd', '--data', this.paths.dir], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, OUTRIG_LOG_LEVEL: process.env.OUTRIG_LOG_LEVEL ?? 'info' },
    });
    closeSync(logFd);
    child.unref();
    this.log.info({ pid: child.pid, dir: this.paths.dir }, 'started diskd');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`diskd exited with code ${child.exitCode}; see ${join(this.paths.dir, 'diskd.log')}`);
      if (await this.healthy()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`diskd did not come up within 30 s; see ${join(this.paths.dir, 'diskd.log')}`);
  }

  private async healthy(): Promise<boolean> {
    try {
      await this.call('GET', '/healthz');
      return true;
    } catch {
      return false;
    }
  }

  /** Stops diskd (it checkpoints and closes every volume). For `outrig up`, whose VMs are stopped first. */
  async stop(): Promise<void> {
    const pid = await this.pid();
    if (!pid) return;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    // The process itself, not its pidfile: diskd removes the pidfile before its last moments.
    while (Date.now() < deadline && (await isLiveProcessWith(pid, this.paths.dir))) await new Promise((r) => setTimeout(r, 100));
  }

  call<T>(method: string, path: string, body?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = request(
        { socketPath: this.paths.control, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {} },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const json = text ? (JSON.parse(text) as unknown) : undefined;
            if ((res.statusCode ?? 500) >= 400) {
              reject(new DiskdError(res.statusCode ?? 500, (json as { error?: { message?: string } })?.error?.message ?? `diskd answered ${res.statusCode}`));
            } else resolve(json as T);
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  async volumes(): Promise<VolumeState[]> {
    return (await this.call<{ items: VolumeState[] }>('GET', '/volumes')).items;
  }

  /**
   * The volumes and the host's disk space, from one moment. `space` is absent when diskd cannot read
   * its file system, or is older than the space accounting (diskd outlives agent upgrades).
   */
  async volumesAndSpace(): Promise<{ volumes: VolumeState[]; space?: DiskSpace }> {
    const r = await this.call<{ items: VolumeState[]; space?: DiskSpace }>('GET', '/volumes');
    return { volumes: r.items, space: r.space ?? undefined };
  }

  createVolume(name: string, o: { sizeBytes: number; blockSize?: number; source?: VolumeSource }): Promise<VolumeState> {
    return this.call('PUT', `/volumes/${encodeURIComponent(name)}`, o);
  }

  async deleteVolume(name: string): Promise<void> {
    await this.call('DELETE', `/volumes/${encodeURIComponent(name)}`);
  }

  resize(name: string, sizeBytes: number): Promise<VolumeState> {
    return this.call('POST', `/volumes/${encodeURIComponent(name)}/resize`, { sizeBytes });
  }

  async createSnapshot(name: string, snapshot: string): Promise<void> {
    await this.call('PUT', `/volumes/${encodeURIComponent(name)}/snapshots/${encodeURIComponent(snapshot)}`);
  }

  async deleteSnapshot(name: string, snapshot: string): Promise<void> {
    await this.call('DELETE', `/volumes/${encodeURIComponent(name)}/snapshots/${encodeURIComponent(snapshot)}`);
  }

  async hasImage(id: string): Promise<boolean> {
    try {
      await this.call('GET', `/images/${encodeURIComponent(id)}`);
      return true;
    } catch (e) {
      if (e instanceof DiskdError && e.status === 404) return false;
      throw e;
    }
  }

  async registerImage(id: string, from: string): Promise<void> {
    await this.call('PUT', `/images/${encodeURIComponent(id)}`, { from });
  }
}
