/**
 * The services an agent runs beside its VMs: this host's part of virtual networks (with 802.1X on
 * a dedicated port), and storage: diskd with this host's volumes, and their backups.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { StorageReport, VolumeReport } from '../model/agent-protocol.ts';
import { dhcpTag } from '../network/index.ts';
import { VolumeBackups } from './backups.ts';
import { HostNetwork, type BackendChoice } from './networks.ts';
import { Storage } from './storage.ts';
import { Supplicant } from './supplicant.ts';

export interface NetworkConfig {
  /** Network backend (default: probe, vxlan before vlan). */
  backend?: BackendChoice;
  /** The underlay address VXLAN runs over (default: found). */
  underlay?: string;
  /** The port of a dedicated cluster's network, authenticated with 802.1X. */
  dedicatedPort?: string;
}

/** Probes and sets up the host's networking; the supplicant uses the host key and CA at these paths once there is a principal. */
export async function startNetworking(o: {
  dataDir: string;
  name: string;
  network?: NetworkConfig;
  keyPath: string;
  caPath: string;
  log: Logger;
}): Promise<{ supplicant: Supplicant; network: HostNetwork }> {
  const { dataDir, log } = o;
  const supplicant = new Supplicant({ dataDir, port: o.network?.dedicatedPort, identity: o.name, keyPath: o.keyPath, caPath: o.caPath, log });
  const network = new HostNetwork({
    backend: o.network?.backend ?? 'auto',
    underlay: o.network?.underlay,
    log,
    supplicant,
    dhcpTag: dhcpTag(dataDir),
    stateDir: join(dataDir, 'network'),
  });
  await network.init();
  return { supplicant, network };
}

/** diskd (the storage manager keeps it running), volume backups, and the volumes and disk space as last read. */
export class StorageServices {
  private volumes: VolumeReport[] = [];
  /**
   * The disk space, read with the volumes: reported on every heartbeat, so the controller sees free
   * space move within a heartbeat (it records it when it moves enough; see controller/disk-space.ts).
   */
  private space?: StorageReport;

  private constructor(
    readonly storage: Storage,
    readonly backups: VolumeBackups,
    /**
     * Volumes being filled from a backup: not reported until they hold the whole disk (their space is
     * in the storage figures already: the controller counts them twice meanwhile, the safe way).
     */
    readonly filling: Set<string>,
    private readonly changed: () => void,
  ) {}

  /** Starts diskd if it is not running, and reads the volumes; `changed` follows every read. */
  static async start(dataDir: string, log: Logger, changed: () => void): Promise<StorageServices> {
    const storage = new Storage(join(dataDir, 'diskd'), log);
    await storage.ensureRunning();
    const backups = new VolumeBackups(storage, join(dataDir, 'backup-work'));
    const s = new StorageServices(storage, backups, new Set(backups.recover()), changed);
    await s.refresh();
    return s;
  }

  async refresh(): Promise<void> {
    const now = await this.storage.volumesAndSpace();
    this.volumes = now.volumes
      .filter((v) => !this.filling.has(v.name))
      .map((v) => ({ id: v.name, sizeBytes: v.sizeBytes, usedBytes: v.usedBytes, snapshots: v.snapshots }));
    this.space = now.space;
    this.changed();
  }

  /** The heartbeat's read: diskd gone (a crash)? Start it again: QEMU's NBD clients reconnect and carry on. */
  refreshOrRestart(): Promise<void> {
    return this.refresh().catch(() => this.storage.ensureRunning().then(() => this.refresh()));
  }

  report(): { volumes: VolumeReport[]; storage?: StorageReport } {
    return { volumes: this.volumes, storage: this.space };
  }
}
