/**
 * This host's part of Outrig's virtual networks: which backend the kernel allows (probed once at
 * start), the underlay address VXLAN runs over, each network's segment (bridge + VXLAN device)
 * and each guest's taps. Every call is idempotent: it reads what the kernel has first.
 */
import type { Logger } from 'pino';
import type { Inventory } from '../model/host.ts';
import type { VmNic } from '../model/agent-protocol.ts';
import { chooseBackend, dhcpSegments, ensureDhcp, ensurePortSegment, ensureSegment, ensureTap, findUnderlay, isolate, mtuOf, probeBackends, readSriovNics, releaseDhcp, removeSegment, removeTaps, segmentMtu, stopDhcp, subnetAround, VfAllocator, type BackendProbe, type Underlay } from '../network/index.ts';
import type { Supplicant } from './supplicant.ts';

export type BackendChoice = 'auto' | 'vxlan' | 'vlan';

export interface PreparedNic {
  tap: string;
  mac: string;
  mtu: number;
  mode: 'tap';
  reason: string;
}

export class HostNetwork {
  private probes: BackendProbe[] = [];
  private backend?: 'vxlan' | 'vlan';
  private reason = 'not probed yet';
  private underlay?: Underlay;
  private underlayError?: string;
  private vfs?: VfAllocator;
  private vfsError?: string;
  /**
   * Network changes on this host, one at a time: a VM start and the controller's network.ensure
   * for the same segment would otherwise both find no bridge and both try to make it.
   */
  private chain: Promise<unknown> = Promise.resolve();

  private one<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  constructor(
    /** dhcpTag: names this agent's DHCP namespaces apart from other agents' on the machine. */
    private readonly o: { backend: BackendChoice; underlay?: string; log: Logger; supplicant?: Supplicant; dhcpTag: string },
  ) {}

  async init(): Promise<void> {
    this.probes = await probeBackends();
    try {
      this.vfs = new VfAllocator(await readSriovNics('/sys/class/net'));
    } catch (e) {
      this.vfsError = (e as Error).message;
    }
    const c = chooseBackend(this.probes, this.o.backend);
    this.backend = c.backend;
    this.reason = c.reason;
    const u = await findUnderlay(this.o.underlay);
    if ('error' in u) this.underlayError = u.error;
    else this.underlay = u;
    this.o.log.info({ backend: this.backend ?? 'none', reason: this.reason, underlay: this.underlay, underlayError: this.underlayError }, 'network backend chosen');
  }

  inventory(): NonNullable<Inventory['network']> {
    return { backend: this.backend, reason: this.reason, backends: this.probes, underlay: this.underlay, underlayError: this.underlayError };
  }

  /** The underlay and backend a network operation needs, or an error that says what is missing. */
  private ready(): Underlay {
    if (this.backend !== 'vxlan') {
      throw new Error(this.backend === 'vlan' ? 'this host would use the vlan backend, whose realisation is not built yet; only vxlan hosts carry networks' : `this host has no network backend: ${this.reason}`);
    }
    if (!this.underlay) throw new Error(`this host has no underlay address for VXLAN: ${this.underlayError ?? 'unknown'}`);
    return this.underlay;
  }

  /** The segment this host's authenticated port carries (a dedicated cluster's host), if any. */
  private portSegment(): { segment: number; port: string } | undefined {
    const s = this.o.supplicant;
    const first = s?.segments()[0];
    return s?.port && first !== undefined ? { segment: first, port: s.port } : undefined;
  }

  /** A network's segment with exactly these peers in its flood list (or on the dedicated port, for its network). */
  ensure(segment: number, peers: string[]): Promise<void> {
    return this.one(() => this.ensureNow(segment, peers));
  }

  private async ensureNow(segment: number, peers: string[]): Promise<void> {
    const p = this.portSegment();
    if (p?.segment === segment) await ensurePortSegment(segment, p.port);
    else {
      const u = this.ready();
      await ensureSegment({ segment, underlay: u.address, underlayDev: u.dev, underlayMtu: u.mtu, peers });
    }
    // A VXLAN device made again (or a port joined again) has lost its isolation from the DHCP server.
    await isolate(segment);
  }

  remove(segment: number): Promise<void> {
    return this.one(async () => {
      const r = await removeSegment(segment, () => stopDhcp(segment, this.o.dhcpTag));
      if (r.busy) throw new Error(`network segment ${segment} is still in use on this host: ${r.busy}`);
    });
  }

  /** Segments (without touching their flood lists: the controller sends those) and taps for a VM about to start. */
  prepare(instanceId: string, nics: VmNic[]): Promise<PreparedNic[]> {
    return this.one(() => this.prepareNow(instanceId, nics));
  }

  private async prepareNow(instanceId: string, nics: VmNic[]): Promise<PreparedNic[]> {
    if (!nics.length) return [];
    const p = this.portSegment();
    const out: PreparedNic[] = [];
    for (const [i, n] of nics.entries()) {
      let mtu: number;
      let reason: string;
      if (p?.segment === n.segment) {
        await ensurePortSegment(n.segment, p.port);
        mtu = await mtuOf(p.port);
        reason = this.whyNoVf(instanceId, i, n, p.port);
      } else {
        const u = this.ready();
        await ensureSegment({ segment: n.segment, underlay: u.address, underlayDev: u.dev, underlayMtu: u.mtu });
        mtu = segmentMtu(u.mtu);
        reason = 'the network is carried by VXLAN on this host: a virtual function would bypass it';
      }
      out.push({ tap: await ensureTap(instanceId, i, n.segment, mtu), mac: n.mac, mtu, mode: 'tap', reason });
      if (n.dhcpServer) await this.serveDhcp(instanceId, n, mtu);
    }
    return out;
  }

  /**
   * A NIC on the dedicated port's network could be a virtual function of that port. The allocator
   * says whether one is there; passthrough (vfio-pci) is not built yet, so the NIC is a tap either
   * way, and the reason says which.
   */
  private whyNoVf(instanceId: string, nicIndex: number, n: VmNic, port: string): string {
    if (!this.vfs) return `SR-IOV could not be read: ${this.vfsError ?? 'unknown'}`;
    try {
      const a = this.vfs.allocate({ instanceId, nicIndex, networkSegment: n.segment, mac: n.mac, pf: port });
      if (a.mode === 'vf') {
        this.vfs.release(instanceId, nicIndex);
        return `${port} has a free virtual function (VF ${a.vfIndex}, ${a.pciAddress}), but VF passthrough is not built yet`;
      }
      return a.reason;
    } catch (e) {
      return (e as Error).message;
    }
  }

  private async serveDhcp(instanceId: string, n: VmNic, mtu: number): Promise<void> {
    const subnet = subnetAround(n.address, n.prefix);
    if (!subnet) throw new Error(`NIC ${n.mac}: ${n.address}/${n.prefix} is not an IPv4 address and prefix`);
    await ensureDhcp(
      { segment: n.segment, tag: this.o.dhcpTag, server: n.dhcpServer!, subnet, gateway: n.gateway, mtu },
      instanceId,
      [{ instanceId, mac: n.mac, address: n.address }],
    );
  }

  release(instanceId: string): Promise<void> {
    this.vfs?.release(instanceId);
    return this.one(async () => {
      await removeTaps(instanceId);
      for (const segment of dhcpSegments(this.o.dhcpTag)) await releaseDhcp(segment, this.o.dhcpTag, instanceId);
    });
  }
}
