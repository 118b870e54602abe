/**
 * Runs one QEMU process per VM, detached (-daemonize) with a pidfile, a QMP socket and a serial log,
 * all inside the VM's own directory, so the agent can exit and later re-adopt the VM.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isLiveProcessWith } from './process.ts';
import { buildQemuArgs, type VmPaths, type VmSpec } from './qemu-command.ts';
import { QmpClient } from './qmp.ts';
import { quit, systemPowerdown } from './qmp-commands.ts';

export class QemuLaunchError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
  /** QEMU could not bind a forwarded host port (someone else took it). */
  get portInUse(): boolean {
    return /host forwarding rule/i.test(this.stderr);
  }
}

/** Per-boot facts kept next to the VM so an adopting agent knows them too. */
export interface VmBootState {
  /** Serial log size when this boot started: the ready marker is searched after it. */
  serialOffset: number;
  launchedAt: string;
  readyAt?: string;
  /** How this boot ended, once it has. */
  exit?: { at: string; reason: string };
}

export type StopMethod = 'not-running' | 'powerdown' | 'quit' | 'kill';

interface QemuDriverOptions {
  vmsDir: string;
  qemuBinary?: string;
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFile(path + '.tmp', JSON.stringify(value, null, 2) + '\n');
  await rename(path + '.tmp', path);
}

export class QemuDriver {
  readonly vmsDir: string;
  readonly qemuBinary: string;
  /** QEMU serves one QMP client per socket, so each VM's connection is shared by everyone here. */
  private readonly qmps = new Map<string, Promise<QmpClient>>();

  constructor(opts: QemuDriverOptions) {
    this.vmsDir = opts.vmsDir;
    this.qemuBinary = opts.qemuBinary ?? 'qemu-system-x86_64';
  }

  paths(id: string): VmPaths {
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`invalid VM id: ${id}`);
    const dir = join(this.vmsDir, id);
    return {
      dir,
      pidfile: join(dir, 'qemu.pid'),
      qmpSocket: join(dir, 'qmp.sock'),
      inspectSocket: join(dir, 'qmp-inspect.sock'),
      serialLog: join(dir, 'serial.log'),
    };
  }

  async listIds(): Promise<string[]> {
    if (!existsSync(this.vmsDir)) return [];
    const ids: string[] = [];
    for (const d of await readdir(this.vmsDir)) if (existsSync(join(this.vmsDir, d, 'vm.json'))) ids.push(d);
    return ids;
  }

  async readSpec(id: string): Promise<VmSpec | null> {
    try {
      return JSON.parse(await readFile(join(this.paths(id).dir, 'vm.json'), 'utf8')) as VmSpec;
    } catch {
      return null;
    }
  }

  /** Records a changed spec (volumes plugged or unplugged) so an adopting agent knows it. */
  async writeSpec(spec: VmSpec): Promise<void> {
    await writeJsonAtomic(join(this.paths(spec.id).dir, 'vm.json'), spec);
  }

  async readBootState(id: string): Promise<VmBootState | null> {
    try {
      return JSON.parse(await readFile(join(this.paths(id).dir, 'boot.json'), 'utf8')) as VmBootState;
    } catch {
      return null;
    }
  }

  async writeBootState(id: string, st: VmBootState): Promise<void> {
    await writeJsonAtomic(join(this.paths(id).dir, 'boot.json'), st);
  }

  /** The pid of the VM's QEMU if it is running (and really is this VM's QEMU), else null. */
  async runningPid(id: string): Promise<number | null> {
    const p = this.paths(id);
    let pid: number;
    try {
      pid = Number((await readFile(p.pidfile, 'utf8')).trim());
    } catch {
      return null;
    }
    if (!Number.isInteger(pid) || pid <= 0) return null;
    return (await isLiveProcessWith(pid, p.qmpSocket)) ? pid : null;
  }

  /** Starts QEMU for spec; resolves once QEMU has daemonized (devices created, QMP listening). */
  async launch(spec: VmSpec): Promise<{ pid: number; boot: VmBootState }> {
    const p = this.paths(spec.id);
    await mkdir(p.dir, { recursive: true, mode: 0o750 });
    if (await this.runningPid(spec.id)) throw new Error(`VM ${spec.id} is already running`);
    await writeJsonAtomic(join(p.dir, 'vm.json'), spec);
    await rm(p.pidfile, { force: true });
    await rm(p.qmpSocket, { force: true });
    await rm(p.inspectSocket, { force: true });
    const serialOffset = existsSync(p.serialLog) ? (await stat(p.serialLog)).size : 0;
    const boot: VmBootState = { serialOffset, launchedAt: new Date().toISOString() };
    await this.writeBootState(spec.id, boot);

    const args = buildQemuArgs(spec, p);
    const child = spawn(this.qemuBinary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 16384) stderr += d;
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    if (code !== 0) {
      throw new QemuLaunchError(`qemu exited with code ${code}: ${stderr.trim().split('\n').pop() ?? ''}`, stderr);
    }
    const pid = await this.runningPid(spec.id);
    if (!pid) throw new QemuLaunchError('qemu daemonized but its process is gone (see the serial log)', stderr);
    return { pid, boot };
  }

  /** The VM's QMP connection, opened on first use and shared until QEMU closes it. */
  qmp(id: string): Promise<QmpClient> {
    const cached = this.qmps.get(id);
    if (cached) return cached;
    const p = QmpClient.connect(this.paths(id).qmpSocket);
    const forget = () => {
      if (this.qmps.get(id) === p) this.qmps.delete(id);
    };
    p.then((c) => c.once('close', forget), forget);
    this.qmps.set(id, p);
    return p;
  }

  /** Closes the VM's QMP connection if one is open (the VM keeps running). */
  releaseQmp(id: string): void {
    const p = this.qmps.get(id);
    this.qmps.delete(id);
    p?.then((c) => c.close()).catch(() => undefined);
  }

  releaseAll(): void {
    for (const id of [...this.qmps.keys()]) this.releaseQmp(id);
  }

  /**
   * Graceful stop: ACPI power button, then QMP quit once `timeoutMs` has passed, then SIGKILL
   * if QEMU still lingers. Returns how the VM ended.
   */
  async stop(id: string, timeoutMs: number): Promise<StopMethod> {
    const pid = await this.runningPid(id);
    if (!pid) return 'not-running';
    try {
      const qmp = await this.qmp(id);
      await systemPowerdown(qmp);
      if (await this.waitGone(id, pid, timeoutMs)) return 'powerdown';
      await quit(qmp).catch(() => undefined);
      if (await this.waitGone(id, pid, 5000)) return 'quit';
    } catch {
      // QMP unreachable: fall through to a signal.
    }
    process.kill(pid, 'SIGKILL');
    await this.waitGone(id, pid, 5000);
    return 'kill';
  }

  /** Powers the VM off at once, without asking the guest: QEMU quits (its block layer flushed), killed if it does not. */
  async powerOff(id: string): Promise<StopMethod> {
    const pid = await this.runningPid(id);
    if (!pid) return 'not-running';
    try {
      await quit(await this.qmp(id)).catch(() => undefined);
      if (await this.waitGone(id, pid, 5000)) return 'quit';
    } catch {
      // QMP unreachable: fall through to a signal.
    }
    process.kill(pid, 'SIGKILL');
    await this.waitGone(id, pid, 5000);
    return 'kill';
  }

  /** Stops the VM at once (no guest shutdown). */
  async kill(id: string): Promise<void> {
    const pid = await this.runningPid(id);
    if (!pid) return;
    process.kill(pid, 'SIGKILL');
    await this.waitGone(id, pid, 5000);
  }

  /** Removes every file of the VM. The VM must not be running. */
  async remove(id: string): Promise<void> {
    if (await this.runningPid(id)) throw new Error(`VM ${id} is still running`);
    this.releaseQmp(id);
    await rm(this.paths(id).dir, { recursive: true, force: true });
  }

  private async waitGone(id: string, pid: number, timeoutMs: number): Promise<boolean> {
    const marker = this.paths(id).qmpSocket;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!(await isLiveProcessWith(pid, marker))) return true;
      await sleep(50);
    }
    return !(await isLiveProcessWith(pid, marker));
  }
}
