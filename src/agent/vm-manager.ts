/**
 * The agent's view of the VMs on its host: starts, stops, restarts and deletes them through the
 * QEMU driver, watches them (QMP events, process liveness, ready marker) and reports their state.
 * Operations on one VM are serialised; different VMs proceed in parallel.
 */
import type { Logger } from 'pino';
import { QemuLaunchError, ROOT_PORTS, balloon as setBalloon, type Accel, type QemuDriver, type QmpEvent, type VmDisk } from '../hypervisor/index.ts';
import { leftVms } from './left-vms.ts';
import { vmReport, type ManagedVm } from './vm-report.ts';
import type { DiskRelease, VmDefinition, VmReport } from '../model/agent-protocol.ts';
import { dropBlockNode, pluggedVolumes, plugDisk, unplugDisk, unpluggedVolume } from './hotplug.ts';
import type { HostNetwork } from './networks.ts';
import { watchForMarker } from './file-tail.ts';
import { SerialLogLimiter, rotateIfOver } from './serial-log.ts';
import type { ImageCache } from './image-cache.ts';
import { assignPorts } from './ports.ts';
import { MiB, enableBalloonStats, sampleBalloon } from './balloon.ts';
import { vmSpec } from './vm-spec.ts';

export interface VmManagerOptions {
  driver: QemuDriver;
  /** Local paths of an image's files (the agent's ImageCache; anything with `ensure` in tests). */
  images: Pick<ImageCache, 'ensure'>;
  accel: Accel;
  stopTimeoutMs: number;
  log: Logger;
  /** Called whenever a VM's reported state may have changed. */
  onChange: () => void;
  /** Address forwarded guest ports listen on. */
  forwardAddress?: string;
  /** Where volumes are served (diskd's NBD socket); export name = volume id. */
  nbdSocket: string;
  /** Taps on this host's networks (the agent's HostNetwork); absent: VMs with NICs on networks cannot start. */
  networks?: Pick<HostNetwork, 'prepare' | 'release'>;
  /** A VM's serial log is rotated past this size, one previous file kept (default DEFAULT_SERIAL_LOG_MAX). */
  serialLogMaxBytes?: number;
}

const DEFAULT_SERIAL_LOG_MAX = 8 * 1024 * 1024;
/** How long a detach waits for the guest to release the device. */
const UNPLUG_TIMEOUT_MS = 30_000;

export class VmManager {
  private readonly vms = new Map<string, ManagedVm>();
  private readonly fwdAddr: string;
  private readonly serialMax: number;

  constructor(private readonly o: VmManagerOptions) {
    this.fwdAddr = o.forwardAddress ?? '127.0.0.1';
    this.serialMax = o.serialLogMaxBytes ?? DEFAULT_SERIAL_LOG_MAX;
  }

  private entry(id: string): ManagedVm {
    let m = this.vms.get(id);
    if (!m) {
      m = { id, state: 'stopped', lock: Promise.resolve() };
      this.vms.set(id, m);
    }
    return m;
  }

  private locked<T>(id: string, fn: (m: ManagedVm) => Promise<T>): Promise<T> {
    const m = this.entry(id);
    const run = m.lock.then(() => fn(m));
    m.lock = run.catch(() => undefined);
    return run;
  }

  private changed(): void {
    this.o.onChange();
  }

  /** Takes over the VMs an earlier agent left (left-vms.ts finds them); running ones keep running. */
  async adoptAll(): Promise<void> {
    for await (const left of leftVms(this.o.driver)) {
      const m = this.entry(left.id);
      m.spec = left.spec;
      m.boot = left.boot;
      if (left.pid) {
        m.pid = left.pid;
        m.state = 'running';
        await this.watch(m);
        this.o.log.info({ vm: left.id, pid: left.pid }, 'adopted running VM');
      } else {
        m.state = 'stopped';
        await this.trimSerialLog(left.id);
      }
    }
  }

  report(): VmReport[] {
    return [...this.vms.values()].flatMap((m) => vmReport(m) ?? []);
  }

  serialLog(id: string): string | undefined {
    return this.vms.get(id)?.spec ? this.o.driver.paths(id).serialLog : undefined;
  }

  start(id: string, def: VmDefinition): Promise<void> {
    return this.locked(id, (m) => this.startLocked(m, def));
  }

  /** Stops the VM: the power button, forced off after stopTimeoutMs; with force, off at once. */
  stop(id: string, o: { force?: boolean } = {}): Promise<void> {
    if (o.force) this.forceStopUnderWay(id);
    return this.locked(id, (m) => this.stopLocked(m, !!o.force));
  }

  restart(id: string, def: VmDefinition, o: { force?: boolean } = {}): Promise<void> {
    const asked = Date.now();
    const tookOver = o.force && this.forceStopUnderWay(id);
    return this.locked(id, async (m) => {
      // It ended the wait of a restart under way, which has booted the VM since: that is the boot
      // asked for, not one to stop again.
      if (tookOver && m.spec && m.state === 'running' && m.boot && Date.parse(m.boot.launchedAt) >= asked) {
        m.spec = { ...m.spec, owner: { ...m.spec.owner, generation: def.generation, restartSeq: def.restartSeq } };
        await this.o.driver.writeSpec(m.spec);
        this.changed();
        return;
      }
      await this.stopLocked(m, !!o.force);
      await this.startLocked(m, def);
    });
  }

  /**
   * A forced stop while a stop is waiting for the guest (which holds the VM's lock): the VM is
   * powered off now, which ends that wait, instead of after it. Whether there was such a stop.
   */
  private forceStopUnderWay(id: string): boolean {
    const m = this.vms.get(id);
    if (m?.state !== 'stopping' || m.stopping?.method !== 'acpi') return false;
    m.stopping = { method: 'force', since: new Date().toISOString() };
    this.changed();
    void this.o.driver.powerOff(id).catch((e: Error) => this.o.log.warn({ vm: id, err: e.message }, 'could not power the VM off'));
    return true;
  }

  /** Plugs a volume into the running VM (QMP blockdev-add + device_add on a free root port); `tag` names the request. */
  attach(id: string, volumeId: string, tag?: string): Promise<void> {
    return this.locked(id, async (m) => {
      if (!m.spec) throw new Error(`no VM ${id} on this host`);
      if (m.spec.disks.some((d) => d.volumeId === volumeId)) return;
      const used = new Set(m.spec.disks.map((d) => d.port));
      let port = 0;
      while (used.has(port)) port++;
      if (port >= ROOT_PORTS) throw new Error(`VM ${id} has no free slot for another volume (at most ${ROOT_PORTS})`);
      const disk: VmDisk = { volumeId, socket: this.o.nbdSocket, export: volumeId, boot: false, port, tag };
      if (m.state === 'running') await plugDisk(await this.o.driver.qmp(id), disk);
      // A stopped VM gets the volume at its next start.
      const released = m.spec.owner.released?.filter((r) => r.volumeId !== volumeId);
      m.spec = { ...m.spec, disks: [...m.spec.disks, disk], owner: { ...m.spec.owner, released } };
      await this.o.driver.writeSpec(m.spec);
      this.changed();
    });
  }

  /** Unplugs a volume: the guest is asked to release the device (PCIe hot-unplug), then the block node goes. */
  detach(id: string, volumeId: string): Promise<void> {
    return this.locked(id, async (m) => {
      if (!m.spec || !m.spec.disks.some((d) => d.volumeId === volumeId)) return;
      if (m.state === 'running') await unplugDisk(await this.o.driver.qmp(id), volumeId, UNPLUG_TIMEOUT_MS);
      await this.forgetDisk(m, volumeId);
    });
  }

  /**
   * The guest unplugged a disk itself (it powered off the slot): QEMU has deleted the device, so the
   * block node is closed, the VM's spec forgets the volume and the report says the guest released it.
   */
  private guestUnplugged(m: ManagedVm, volumeId: string): Promise<void> {
    return this.locked(m.id, async () => {
      const disk = m.spec?.disks.find((d) => d.volumeId === volumeId);
      // Gone already: this was the end of a detach, which has done the rest.
      if (!disk || m.state !== 'running') return;
      this.o.log.warn({ vm: m.id, volume: volumeId }, 'the guest unplugged a volume itself');
      await dropBlockNode(await this.o.driver.qmp(m.id), volumeId);
      const released: DiskRelease[] = [...(m.spec!.owner.released ?? []).filter((r) => r.volumeId !== volumeId), { volumeId, tag: disk.tag }];
      m.spec = { ...m.spec!, owner: { ...m.spec!.owner, released: released.slice(-ROOT_PORTS * 8) } };
      await this.forgetDisk(m, volumeId);
    });
  }

  /** Rotates a VM's serial log now if it is over the limit (an old log at adoption or start); a failure only warns. */
  private trimSerialLog(id: string): Promise<unknown> {
    return rotateIfOver(this.o.driver.paths(id).serialLog, this.serialMax).catch((e: Error) =>
      this.o.log.warn({ vm: id, err: e.message }, 'could not rotate the serial log'),
    );
  }

  private async forgetDisk(m: ManagedVm, volumeId: string): Promise<void> {
    m.spec = { ...m.spec!, disks: m.spec!.disks.filter((d) => d.volumeId !== volumeId) };
    await this.o.driver.writeSpec(m.spec);
    this.changed();
  }

  /** Moves the guest's balloon so that it holds `targetMiB` (QMP balloon); the guest's driver does the rest. */
  balloon(id: string, targetMiB: number): Promise<void> {
    return this.locked(id, async (m) => {
      if (!m.spec || m.state !== 'running') throw new Error(`VM ${id} is not running on this host`);
      if (targetMiB < 1 || targetMiB > m.spec.memoryMiB) throw new Error(`balloon target ${targetMiB} MiB is outside 1..${m.spec.memoryMiB} MiB`);
      await setBalloon(await this.o.driver.qmp(id), targetMiB * MiB);
      m.memory = { ...(m.memory ?? { actualMiB: m.spec.memoryMiB }), targetMiB };
      this.changed();
    });
  }

  /** Reads each running guest's balloon and memory statistics. */
  async sampleMemory(): Promise<void> {
    for (const m of this.vms.values()) {
      if (m.state !== 'running' || !m.qmp) continue;
      try {
        const { actualMiB, usedMiB } = await sampleBalloon(m.qmp.client);
        const before = m.memory;
        m.memory = { targetMiB: before?.targetMiB, actualMiB, usedMiB };
        if (!before || before.actualMiB !== actualMiB || Math.abs((before.usedMiB ?? -99) - (usedMiB ?? -99)) >= 4) this.changed();
      } catch (e) {
        this.o.log.debug({ vm: m.id, err: (e as Error).message }, 'balloon sample failed');
      }
    }
  }

  /** Stops the VM at once and removes every file of it. */
  delete(id: string): Promise<void> {
    return this.locked(id, async (m) => {
      this.unwatch(m);
      await this.o.driver.kill(id);
      await this.o.driver.remove(id);
      await this.o.networks?.release(id);
      this.vms.delete(id);
      this.changed();
    });
  }

  private async startLocked(m: ManagedVm, def: VmDefinition): Promise<void> {
    if (m.state === 'running' && (await this.o.driver.runningPid(m.id))) return;
    m.state = 'starting';
    this.changed();
    try {
      const files = def.image ? await this.o.images.ensure(def.image) : undefined;
      const prev = m.spec ?? (await this.o.driver.readSpec(m.id)) ?? undefined;
      let forwards = await assignPorts(this.fwdAddr, def.forwardPorts, prev?.forwards ?? []);
      const wanted = def.nics ?? [];
      if (wanted.length && !this.o.networks) throw new Error('this agent does not manage networks');
      const nics = wanted.length ? await this.o.networks!.prepare(m.id, wanted) : undefined;
      for (let attempt = 0; ; attempt++) {
        const spec = vmSpec(m.id, def, { accel: this.o.accel, nbdSocket: this.o.nbdSocket, files, forwards, nics });
        try {
          m.shutdownReason = undefined;
          await this.trimSerialLog(m.id);
          const { pid, boot } = await this.o.driver.launch(spec);
          m.spec = spec;
          m.pid = pid;
          m.boot = boot;
          break;
        } catch (e) {
          // Another process took a port between our check and QEMU's bind: pick new ones.
          if (e instanceof QemuLaunchError && e.portInUse && attempt < 3) {
            forwards = await assignPorts(this.fwdAddr, def.forwardPorts, []);
            continue;
          }
          throw e;
        }
      }
      await this.watch(m);
      m.state = 'running';
      this.o.log.info({ vm: m.id, name: def.name, pid: m.pid, accel: this.o.accel }, 'VM started');
    } catch (e) {
      m.state = 'stopped';
      throw e;
    } finally {
      this.changed();
    }
  }

  private async stopLocked(m: ManagedVm, force: boolean): Promise<void> {
    if (!(await this.o.driver.runningPid(m.id))) {
      if (m.state !== 'stopped') {
        m.state = 'stopped';
        this.changed();
      }
      return;
    }
    const now = Date.now();
    m.state = 'stopping';
    m.stopping = force
      ? { method: 'force', since: new Date(now).toISOString() }
      : { method: 'acpi', since: new Date(now).toISOString(), forceAt: new Date(now + this.o.stopTimeoutMs).toISOString() };
    this.changed();
    try {
      const how = force ? await this.o.driver.powerOff(m.id) : await this.o.driver.stop(m.id, this.o.stopTimeoutMs);
      // Forced meanwhile (forceStopUnderWay): the guest did not shut down by itself.
      const forced = m.stopping?.method === 'force';
      this.o.log.info({ vm: m.id, how, forced }, 'VM stopped');
      await this.exited(m, forced ? 'stopped (forced off)' : how === 'powerdown' ? 'stopped' : `stopped (${how})`);
    } finally {
      m.stopping = undefined;
    }
  }

  /** Watches a running VM: QMP events (exits, disks the guest unplugs), its serial log's size and the ready marker. */
  private async watch(m: ManagedVm): Promise<void> {
    this.unwatch(m);
    const id = m.id;
    try {
      const client = await this.o.driver.qmp(id);
      const unplugged = (volumeId: string) =>
        void this.guestUnplugged(m, volumeId).catch((e: Error) =>
          this.o.log.warn({ vm: id, volume: volumeId, err: e.message }, 'could not finish a guest-initiated unplug'),
        );
      const onEvent = (ev: QmpEvent) => {
        if (ev.event === 'SHUTDOWN') m.shutdownReason = (ev.data as { reason?: string } | undefined)?.reason ?? 'shutdown';
        const volumeId = unpluggedVolume(ev);
        if (volumeId) unplugged(volumeId);
      };
      const onClose = () => {
        if (m.qmp?.client === client) m.qmp = undefined;
        void this.checkExited(m).catch((e: Error) => this.o.log.warn({ vm: id, err: e.message }, 'exit check failed'));
      };
      client.on('event', onEvent);
      client.once('close', onClose);
      m.qmp = { client, onEvent, onClose };
      await enableBalloonStats(client).catch((e: Error) => this.o.log.warn({ vm: id, err: e.message }, 'could not enable balloon statistics'));
      // Disks the guest unplugged while no agent listened (their events went with the old connection).
      const plugged = await pluggedVolumes(client).catch((e: Error) => this.o.log.warn({ vm: id, err: e.message }, 'could not list plugged disks'));
      for (const d of m.spec?.disks ?? []) if (plugged && !plugged.has(d.volumeId)) unplugged(d.volumeId);
    } catch (e) {
      // Liveness is also swept by pid, so a VM without QMP is still watched.
      this.o.log.warn({ vm: id, err: (e as Error).message }, 'QMP connect failed');
    }
    const serialLog = this.o.driver.paths(id).serialLog;
    const rotated = () => {
      // This boot's output now starts at the beginning of the file.
      if (!m.boot?.serialOffset) return;
      m.boot.serialOffset = 0;
      void this.o.driver.writeBootState(id, m.boot).catch(() => undefined);
    };
    m.serialLimit = new SerialLogLimiter(serialLog, this.serialMax, rotated, (e) =>
      this.o.log.warn({ vm: id, err: e.message }, 'could not rotate the serial log'),
    );
    const marker = m.spec?.readyMarker;
    if (marker && m.boot && !m.boot.readyAt) {
      const boot = m.boot;
      m.marker = watchForMarker(serialLog, boot.serialOffset, marker, () => {
        boot.readyAt = new Date().toISOString();
        void this.o.driver.writeBootState(id, boot).catch(() => undefined);
        this.o.log.info({ vm: id }, 'guest ready');
        this.changed();
      });
    }
  }

  private unwatch(m: ManagedVm): void {
    m.marker?.stop();
    m.marker = undefined;
    m.serialLimit?.stop();
    m.serialLimit = undefined;
    const q = m.qmp;
    m.qmp = undefined;
    q?.client.off('event', q.onEvent);
    q?.client.off('close', q.onClose);
  }

  private async exited(m: ManagedVm, reason: string): Promise<void> {
    this.unwatch(m);
    m.state = 'stopped';
    m.pid = undefined;
    m.memory = undefined;
    if (m.boot) {
      m.boot.exit = { at: new Date().toISOString(), reason };
      await this.o.driver.writeBootState(m.id, m.boot).catch(() => undefined);
    }
    this.changed();
  }

  /** A VM that went away on its own (guest poweroff, crash, kill from outside). */
  private async checkExited(m: ManagedVm): Promise<void> {
    if (m.state !== 'running') return; // an operation is handling it
    if (await this.o.driver.runningPid(m.id)) return;
    await this.locked(m.id, async () => {
      if (m.state !== 'running' || (await this.o.driver.runningPid(m.id))) return;
      const reason = m.shutdownReason ?? 'process-exited';
      this.o.log.info({ vm: m.id, reason }, 'VM exited');
      await this.exited(m, reason);
    });
  }

  /** Backstop for missed QMP closes: checks every running VM's process. */
  async sweep(): Promise<void> {
    for (const m of this.vms.values()) {
      if (m.state !== 'running') continue;
      await this.checkExited(m);
      if (m.state === 'running' && !m.qmp) await this.watch(m).catch(() => undefined);
    }
  }

  /** Lets go of the VMs without stopping them (agent shutdown). */
  close(): void {
    for (const m of this.vms.values()) this.unwatch(m);
    this.o.driver.releaseAll();
  }
}
