/**
 * This host's part of Outrig's virtual networks: which backend the kernel allows (probed once at
 * start), the underlay address VXLAN runs over, each network's segment (bridge + VXLAN device),
 * each guest's taps, and the host firewall over all of them (src/network/firewall-plan.ts). Every
 * call is idempotent: it reads what the kernel has first.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { VmNetNic } from '../hypervisor/index.ts';
import type { Inventory } from '../model/host.ts';
import type { VmNic } from '../model/agent-protocol.ts';
import {
  chooseBackend,
  dhcpSegments,
  ensureDhcp,
  ensurePortSegment,
  ensureRemoteMacs,
  ensureSegment,
  ensureTap,
  findUnderlay,
  HostFirewall,
  isolate,
  isolateFromHost,
  mtuOf,
  probeBackends,
  readSriovNics,
  releaseDhcp,
  removeSegment,
  removeTaps,
  segmentMtu,
  sh,
  stopDhcp,
  subnetAround,
  untaggedVfCommand,
  VfAllocator,
  withNetwork,
  withNics,
  withoutInstance,
  withoutNetwork,
  type BackendProbe,
  type FirewallNic,
  type HeldVf,
  type RemoteMac,
  type Underlay,
} from '../network/index.ts';
import { applySysfsWrites, planVfioBind, planVfioRelease, readPciDevice, vfioLoaded } from '../network/index.ts';
import type { Supplicant } from './supplicant.ts';

export type BackendChoice = 'auto' | 'vxlan' | 'vlan';

type PreparedNic = VmNetNic;

export class HostNetwork {
  private probes: BackendProbe[] = [];
  private backend?: 'vxlan' | 'vlan';
  private reason = 'not probed yet';
  private underlay?: Underlay;
  private underlayError?: string;
  private vfs?: VfAllocator;
  private vfsError?: string;
  private readonly firewall: HostFirewall;
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
    /**
     * dhcpTag: names this agent's DHCP namespaces apart from other agents' on the machine.
     * stateDir: where the VFs guests hold are kept across agent restarts. sysfs: /sys (tests: a tree).
     */
    private readonly o: { backend: BackendChoice; underlay?: string; log: Logger; supplicant?: Supplicant; dhcpTag: string; stateDir: string; sysfs?: string },
  ) {
    this.firewall = new HostFirewall(o.stateDir, () => this.underlay?.address);
  }

  async init(): Promise<void> {
    this.probes = await probeBackends();
    try {
      this.vfs = new VfAllocator(await readSriovNics(join(this.sysfs, 'class', 'net')), this.heldVfs());
    } catch (e) {
      this.vfsError = (e as Error).message;
    }
    const c = chooseBackend(this.probes, this.o.backend);
    this.backend = c.backend;
    this.reason = c.reason;
    const u = await findUnderlay(this.o.underlay);
    if ('error' in u) this.underlayError = u.error;
    else this.underlay = u;
    // Before any VM is adopted or operation taken: the rules this host had, loaded again in one transaction.
    await this.firewall.resume();
    this.o.log.info(
      { backend: this.backend ?? 'none', reason: this.reason, underlay: this.underlay, underlayError: this.underlayError },
      'network backend chosen',
    );
  }

  inventory(): NonNullable<Inventory['network']> {
    return { backend: this.backend, reason: this.reason, backends: this.probes, underlay: this.underlay, underlayError: this.underlayError };
  }

  /** The underlay and backend a network operation needs, or an error that says what is missing. */
  private ready(): Underlay {
    if (this.backend !== 'vxlan') {
      throw new Error(
        this.backend === 'vlan'
          ? 'this host would use the vlan backend, whose realisation is not built yet; only vxlan hosts carry networks'
          : `this host has no network backend: ${this.reason}`,
      );
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

  /**
   * A network's segment with exactly these peers in its flood list (or on the dedicated port, for
   * its network), and, when given, exactly these MACs of other hosts' guests in its VXLAN table.
   */
  ensure(segment: number, peers: string[], macs?: RemoteMac[]): Promise<void> {
    return this.one(() => this.ensureNow(segment, peers, macs));
  }

  private async ensureNow(segment: number, peers: string[], macs?: RemoteMac[]): Promise<void> {
    const p = this.portSegment();
    const port = p?.segment === segment;
    const u = port ? undefined : this.ready();
    // The firewall first, so the tables are there before any device of the network is.
    await this.firewall.update((s) => withNetwork(s, segment, port ? [] : peers));
    if (port) await ensurePortSegment(segment, p.port);
    else {
      await ensureSegment({ segment, underlay: u!.address, underlayDev: u!.dev, underlayMtu: u!.mtu, peers });
      if (macs) await ensureRemoteMacs(segment, macs);
    }
    await isolateFromHost(segment);
    // A VXLAN device made again (or a port joined again) has lost its isolation from the DHCP server.
    await isolate(segment);
  }

  remove(segment: number): Promise<void> {
    return this.one(async () => {
      const r = await removeSegment(segment, () => stopDhcp(segment, this.o.dhcpTag));
      if (r.busy) throw new Error(`network segment ${segment} is still in use on this host: ${r.busy}`);
      // With the host's last network and guest gone, so are the tables.
      await this.firewall.update((s) => withoutNetwork(s, segment));
    });
  }

  /** Segments (without touching their flood lists: the controller sends those) and taps for a VM about to start. */
  prepare(instanceId: string, nics: VmNic[]): Promise<PreparedNic[]> {
    return this.one(() => this.prepareNow(instanceId, nics));
  }

  private async prepareNow(instanceId: string, nics: VmNic[]): Promise<PreparedNic[]> {
    if (!nics.length) return [];
    const p = this.portSegment();
    await this.firewall.update((s) => nics.reduce((acc, n) => withNetwork(acc, n.segment), s));
    const out: PreparedNic[] = [];
    const onTaps: FirewallNic[] = [];
    for (const [i, n] of nics.entries()) {
      let mtu: number;
      let reason: string;
      if (p?.segment === n.segment) {
        await ensurePortSegment(n.segment, p.port);
        mtu = await mtuOf(p.port);
        const vf = await this.passThroughVf(instanceId, i, n, p.port);
        if (vf.mode === 'vf') {
          out.push(vf);
          continue;
        }
        reason = vf.reason;
      } else {
        const u = this.ready();
        await ensureSegment({ segment: n.segment, underlay: u.address, underlayDev: u.dev, underlayMtu: u.mtu });
        mtu = segmentMtu(u.mtu);
        reason = 'the network is carried by VXLAN on this host: a virtual function would bypass it';
      }
      const tap = await ensureTap(instanceId, i, n.segment, mtu);
      out.push({ tap, mac: n.mac, mtu, mode: 'tap', reason });
      onTaps.push({ instanceId, tap, mac: n.mac, address: n.address, segment: n.segment, dhcpServer: n.dhcpServer });
      if (n.dhcpServer) await this.serveDhcp(instanceId, n, mtu);
    }
    for (const segment of new Set(nics.map((n) => n.segment))) await isolateFromHost(segment);
    // Until now the taps passed nothing (a tap the firewall does not name is dropped); QEMU opens them after this.
    await this.firewall.update((s) => withNics(s, instanceId, onTaps));
    return out;
  }

  /**
   * A NIC on the dedicated port's network gets a virtual function of that port when the allocator
   * has one and the kernel can pass it through (vfio-pci, IOMMU): the port's switch side puts
   * every frame of the port in the network, so the VF sends untagged, with its MAC fixed and
   * spoof-checked. Otherwise the NIC is a tap, and the reason says why.
   */
  private async passThroughVf(instanceId: string, nicIndex: number, n: VmNic, port: string): Promise<PreparedNic | { mode: 'tap'; reason: string }> {
    if (!this.vfs) return { mode: 'tap', reason: `SR-IOV could not be read: ${this.vfsError ?? 'unknown'}` };
    let a;
    try {
      a = this.vfs.allocate({ instanceId, nicIndex, networkSegment: n.segment, mac: n.mac, pf: port });
    } catch (e) {
      return { mode: 'tap', reason: (e as Error).message };
    }
    if (a.mode !== 'vf') return { mode: 'tap', reason: a.reason };
    const plan = await readPciDevice(this.sysfs, a.pciAddress).then(
      async (d) => planVfioBind(d, await vfioLoaded(this.sysfs)),
      (e: Error) => ({ ok: false as const, reason: e.message }),
    );
    if (!plan.ok) {
      this.vfs.release(instanceId, nicIndex);
      return { mode: 'tap', reason: `${port} has a free virtual function (VF ${a.vfIndex}, ${a.pciAddress}), but ${plan.reason}` };
    }
    try {
      await sh('ip', untaggedVfCommand(port, a.vfIndex, n.mac).slice(1));
      await applySysfsWrites(this.sysfs, plan.writes);
    } catch (e) {
      this.vfs.release(instanceId, nicIndex);
      throw e;
    }
    this.saveHeldVfs();
    return { mode: 'vf', pciAddress: a.pciAddress, mac: n.mac, reason: `VF ${a.vfIndex} of ${port} (${a.pciAddress}), untagged on the port's network` };
  }

  private get sysfs(): string {
    return this.o.sysfs ?? '/sys';
  }

  private get heldFile(): string {
    return join(this.o.stateDir, 'held-vfs.json');
  }

  private heldVfs(): HeldVf[] {
    return existsSync(this.heldFile) ? (JSON.parse(readFileSync(this.heldFile, 'utf8')) as HeldVf[]) : [];
  }

  /** What a restarted agent must not hand out again: the VFs its running guests hold. */
  private saveHeldVfs(): void {
    mkdirSync(this.o.stateDir, { recursive: true });
    writeFileSync(`${this.heldFile}.new`, JSON.stringify(this.vfs?.heldVfs() ?? []));
    renameSync(`${this.heldFile}.new`, this.heldFile);
  }

  private async serveDhcp(instanceId: string, n: VmNic, mtu: number): Promise<void> {
    const subnet = subnetAround(n.address, n.prefix);
    if (!subnet) throw new Error(`NIC ${n.mac}: ${n.address}/${n.prefix} is not an IPv4 address and prefix`);
    await ensureDhcp({ segment: n.segment, tag: this.o.dhcpTag, server: n.dhcpServer!, subnet, gateway: n.gateway, mtu }, instanceId, [
      { instanceId, mac: n.mac, address: n.address },
    ]);
  }

  release(instanceId: string): Promise<void> {
    return this.one(async () => {
      // A VF goes back to its own driver once the guest is gone.
      const freed = this.vfs?.release(instanceId) ?? [];
      for (const h of freed) {
        if (h.mode !== 'vf') continue;
        const vf = (await readSriovNics(join(this.sysfs, 'class', 'net'))).find((x) => x.name === h.pf)?.vfs.find((v) => v.index === h.vfIndex);
        if (vf) await applySysfsWrites(this.sysfs, planVfioRelease(await readPciDevice(this.sysfs, vf.pciAddress)));
      }
      if (freed.some((h) => h.mode === 'vf')) this.saveHeldVfs();
      await removeTaps(instanceId);
      await this.firewall.update((s) => withoutInstance(s, instanceId));
      for (const segment of dhcpSegments(this.o.dhcpTag)) await releaseDhcp(segment, this.o.dhcpTag, instanceId);
    });
  }
}
