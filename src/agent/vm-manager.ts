/**
 * The agent's view of the VMs on its host: starts, stops, restarts and deletes them through the
 * QEMU driver, watches them (QMP events, process liveness, ready marker) and reports their state.
 * Operations on one VM are serialised; different VMs proceed in parallel.
 */
import type { Logger } from 'pino';
import { QemuLaunchError, ROOT_PORTS, blockdevOptions, diskDevice, diskDeviceOptions, diskNode, macFor, type Accel, type QemuDriver, type PortForward, type QmpClient, type QmpEvent, type VmBootState, type VmDisk, type VmSpec } from '../hypervisor/index.ts';
import type { VmDefinition, VmNic, VmReport, VmState } from '../model/agent-protocol.ts';
import type { HostNetwork } from './networks.ts';
import { watchForMarker, type FileTail } from './file-tail.ts';
import type { ImageCache } from './image-cache.ts';
import { freePort, isPortFree } from './ports.ts';

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
}

/**
 * The guest's NIC configuration, on the kernel command line: outrig.nicN=MAC,ADDRESS/PREFIX[,GATEWAY],
 * or outrig.nicN=MAC,dhcp on a network with DHCP (the guest asks this host's server).
 */
export function nicArgs(nics: VmNic[]): string {
  return nics.map((n, i) => `outrig.nic${i + 1}=${n.dhcpServer ? `${n.mac},dhcp` : [n.mac, `${n.address}/${n.prefix}`, n.gateway].filter(Boolean).join(',')}`).join(' ');
}

interface ManagedVm {
  id: string;
  state: VmState;
  spec?: VmSpec;
  pid?: number;
  boot?: VmBootState;
  /** The shared QMP connection and the listeners this manager put on it. */
  qmp?: { client: QmpClient; onEvent: (ev: QmpEvent) => void; onClose: () => void };
  shutdownReason?: string;
  marker?: FileTail;
  /** The balloon as last sampled, and the target this agent set. */
  memory?: { targetMiB?: number; actualMiB: number; usedMiB?: number };
  lock: Promise<unknown>;
}

const MiB = 1024 * 1024;
/** How often the guest's balloon driver refreshes its statistics (seconds). */
const STATS_POLL_S = 2;

export class VmManager {
  private readonly vms = new Map<string, ManagedVm>();
  private readonly fwdAddr: string;

  constructor(private readonly o: VmManagerOptions) {
    this.fwdAddr = o.forwardAddress ?? '127.0.0.1';
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

  /** Finds the VMs left by an earlier agent and takes them over; running ones keep running. */
  async adoptAll(): Promise<void> {
    for (const id of await this.o.driver.listIds()) {
      const spec = await this.o.driver.readSpec(id);
      if (!spec) continue;
      const m = this.entry(id);
      m.spec = spec;
      m.boot = (await this.o.driver.readBootState(id)) ?? undefined;
      const pid = await this.o.driver.runningPid(id);
      if (pid) {
        m.pid = pid;
        m.state = 'running';
        await this.watch(m);
        this.o.log.info({ vm: id, pid }, 'adopted running VM');
      } else {
        m.state = 'stopped';
      }
    }
  }

  report(): VmReport[] {
    const out: VmReport[] = [];
    for (const m of this.vms.values()) {
      if (!m.spec) continue;
      out.push({
        instanceId: m.id,
        state: m.state,
        pid: m.state === 'running' ? m.pid : undefined,
        accel: m.spec.accel,
        forwards: m.spec.forwards,
        nics: m.spec.nics?.map((n) => (n.mode === 'vf' ? { pciAddress: n.pciAddress, mac: n.mac, mode: n.mode, reason: n.reason } : { tap: n.tap, mac: n.mac, mode: n.mode, reason: n.reason })),
        generation: m.spec.owner.generation,
        restartSeq: m.spec.owner.restartSeq,
        bootedAt: m.boot?.launchedAt,
        readyAt: m.boot?.readyAt,
        lastExit: m.boot?.exit,
        disks: m.spec.disks.map((d) => d.volumeId),
        memory: m.state === 'running' ? m.memory : undefined,
      });
    }
    return out;
  }

  serialLog(id: string): string | undefined {
    return this.vms.get(id)?.spec ? this.o.driver.paths(id).serialLog : undefined;
  }

  start(id: string, def: VmDefinition): Promise<void> {
    return this.locked(id, (m) => this.startLocked(m, def));
  }

  stop(id: string): Promise<void> {
    return this.locked(id, (m) => this.stopLocked(m));
  }

  restart(id: string, def: VmDefinition): Promise<void> {
    return this.locked(id, async (m) => {
      await this.stopLocked(m);
      await this.startLocked(m, def);
    });
  }

  /** Plugs a volume into the running VM (QMP blockdev-add + device_add on a free root port). */
  attach(id: string, volumeId: string): Promise<void> {
    return this.locked(id, async (m) => {
      if (!m.spec) throw new Error(`no VM ${id} on this host`);
      if (m.spec.disks.some((d) => d.volumeId === volumeId)) return;
      const used = new Set(m.spec.disks.map((d) => d.port));
      let port = 0;
      while (used.has(port)) port++;
      if (port >= ROOT_PORTS) throw new Error(`VM ${id} has no free slot for another volume (at most ${ROOT_PORTS})`);
      const disk: VmDisk = { volumeId, socket: this.o.nbdSocket, export: volumeId, boot: false, port };
      if (m.state === 'running') {
        const qmp = await this.o.driver.qmp(id);
        await qmp.execute('blockdev-add', blockdevOptions(disk));
        try {
          await qmp.execute('device_add', diskDeviceOptions(disk));
        } catch (e) {
          await qmp.execute('blockdev-del', { 'node-name': diskNode(volumeId) }).catch(() => undefined);
          throw e;
        }
      }
      // A stopped VM gets the volume at its next start.
      m.spec = { ...m.spec, disks: [...m.spec.disks, disk] };
      await this.o.driver.writeSpec(m.spec);
      this.changed();
    });
  }

  /** Unplugs a volume: the guest is asked to release the device (PCIe hot-unplug), then the block node goes. */
  detach(id: string, volumeId: string): Promise<void> {
    return this.locked(id, async (m) => {
      if (!m.spec || !m.spec.disks.some((d) => d.volumeId === volumeId)) return;
      if (m.state === 'running') {
        const qmp = await this.o.driver.qmp(id);
        const gone = new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => {
            qmp.off('event', on);
            reject(new Error(`the guest did not release volume ${volumeId} within 30 s`));
          }, 30_000);
          const on = (ev: QmpEvent) => {
            if (ev.event === 'DEVICE_DELETED' && (ev.data as { device?: string } | undefined)?.device === diskDevice(volumeId)) {
              clearTimeout(t);
              qmp.off('event', on);
              resolve();
            }
          };
          qmp.on('event', on);
        });
        await qmp.execute('device_del', { id: diskDevice(volumeId) });
        await gone;
        await qmp.execute('blockdev-del', { 'node-name': diskNode(volumeId) });
      }
      m.spec = { ...m.spec, disks: m.spec.disks.filter((d) => d.volumeId !== volumeId) };
      await this.o.driver.writeSpec(m.spec);
      this.changed();
    });
  }

  /** Moves the guest's balloon so that it holds `targetMiB` (QMP balloon); the guest's driver does the rest. */
  balloon(id: string, targetMiB: number): Promise<void> {
    return this.locked(id, async (m) => {
      if (!m.spec || m.state !== 'running') throw new Error(`VM ${id} is not running on this host`);
      if (targetMiB < 1 || targetMiB > m.spec.memoryMiB) throw new Error(`balloon target ${targetMiB} MiB is outside 1..${m.spec.memoryMiB} MiB`);
      const qmp = await this.o.driver.qmp(id);
      await qmp.execute('balloon', { value: targetMiB * MiB });
      m.memory = { ...(m.memory ?? { actualMiB: m.spec.memoryMiB }), targetMiB };
      this.changed();
    });
  }

  /**
   * Reads each running guest's balloon and memory statistics. In use = what the guest holds minus
   * its free and cache memory; statistics are absent until the guest's driver has sent some.
   */
  async sampleMemory(): Promise<void> {
    for (const m of this.vms.values()) {
      if (m.state !== 'running' || !m.qmp) continue;
      try {
        const q = m.qmp.client;
        const b = (await q.execute('query-balloon')) as { actual: number };
        const st = (await q.execute('qom-get', { path: '/machine/peripheral/balloon0', property: 'guest-stats' })) as { stats: Record<string, number>; 'last-update': number };
        const actualMiB = Math.round(b.actual / MiB);
        const free = st.stats['stat-free-memory'] ?? -1;
        const cache = st.stats['stat-disk-caches'] ?? -1;
        const usedMiB = st['last-update'] > 0 && free >= 0 ? Math.max(0, Math.round((b.actual - free - Math.max(0, cache)) / MiB)) : undefined;
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
      const disks: VmDisk[] = def.disks.map((d, i) => ({ volumeId: d.volumeId, socket: this.o.nbdSocket, export: d.volumeId, boot: d.boot, port: i }));
      let forwards = await this.assignPorts(def.forwardPorts, prev?.forwards ?? []);
      const wanted = def.nics ?? [];
      if (wanted.length && !this.o.networks) throw new Error('this agent does not manage networks');
      const nics = wanted.length ? await this.o.networks!.prepare(m.id, wanted) : undefined;
      for (let attempt = 0; ; attempt++) {
        const spec: VmSpec = {
          id: m.id,
          name: def.name,
          vcpus: def.vcpus,
          memoryMiB: def.memoryMiB,
          memory: def.memory,
          kernel: files?.kernel,
          initrd: files?.initrd,
          cmdline: def.image ? [def.image.cmdline, def.kernelArgs, nicArgs(wanted)].filter(Boolean).join(' ') : undefined,
          disks,
          accel: this.o.accel,
          forwards,
          readyMarker: def.readyMarker ?? def.image?.readyMarker,
          mac: macFor(m.id),
          nics,
          owner: { generation: def.generation, restartSeq: def.restartSeq },
        };
        try {
          m.shutdownReason = undefined;
          const { pid, boot } = await this.o.driver.launch(spec);
          m.spec = spec;
          m.pid = pid;
          m.boot = boot;
          break;
        } catch (e) {
          // Another process took a port between our check and QEMU's bind: pick new ones.
          if (e instanceof QemuLaunchError && e.portInUse && attempt < 3) {
            forwards = await this.assignPorts(def.forwardPorts, []);
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

  private async stopLocked(m: ManagedVm): Promise<void> {
    if (!(await this.o.driver.runningPid(m.id))) {
      if (m.state !== 'stopped') {
        m.state = 'stopped';
        this.changed();
      }
      return;
    }
    m.state = 'stopping';
    this.changed();
    const how = await this.o.driver.stop(m.id, this.o.stopTimeoutMs);
    this.o.log.info({ vm: m.id, how }, 'VM stopped');
    await this.exited(m, how === 'powerdown' ? 'stopped' : `stopped (${how})`);
  }

  /** Watches a running VM: QMP events and the ready marker on its serial console. */
  private async watch(m: ManagedVm): Promise<void> {
    this.unwatch(m);
    const id = m.id;
    try {
      const client = await this.o.driver.qmp(id);
      const onEvent = (ev: QmpEvent) => {
        if (ev.event === 'SHUTDOWN') m.shutdownReason = (ev.data as { reason?: string } | undefined)?.reason ?? 'shutdown';
      };
      const onClose = () => {
        if (m.qmp?.client === client) m.qmp = undefined;
        void this.checkExited(m);
      };
      client.on('event', onEvent);
      client.once('close', onClose);
      m.qmp = { client, onEvent, onClose };
      await client
        .execute('qom-set', { path: '/machine/peripheral/balloon0', property: 'guest-stats-polling-interval', value: STATS_POLL_S })
        .catch((e: Error) => this.o.log.warn({ vm: id, err: e.message }, 'could not enable balloon statistics'));
    } catch (e) {
      // Liveness is also swept by pid, so a VM without QMP is still watched.
      this.o.log.warn({ vm: id, err: (e as Error).message }, 'QMP connect failed');
    }
    const marker = m.spec?.readyMarker;
    if (marker && m.boot && !m.boot.readyAt) {
      const boot = m.boot;
      m.marker = watchForMarker(this.o.driver.paths(id).serialLog, boot.serialOffset, marker, () => {
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

  private async assignPorts(guestPorts: number[], prev: PortForward[]): Promise<PortForward[]> {
    const out: PortForward[] = [];
    for (const g of guestPorts) {
      const old = prev.find((f) => f.guestPort === g && f.hostAddress === this.fwdAddr);
      const keep = old && (await isPortFree(this.fwdAddr, old.hostPort));
      out.push({ guestPort: g, hostAddress: this.fwdAddr, hostPort: keep ? old.hostPort : await freePort(this.fwdAddr) });
    }
    return out;
  }

  /** Lets go of the VMs without stopping them (agent shutdown). */
  close(): void {
    for (const m of this.vms.values()) this.unwatch(m);
    this.o.driver.releaseAll();
  }
}
