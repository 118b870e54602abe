/**
 * SR-IOV virtual functions (VFs) for guest NICs. A VF is a PCI function of the host's NIC that QEMU
 * hands to the guest whole (vfio-pci), so the guest's packets go to the wire without the host's
 * bridge: the NIC itself puts them on the network's VLAN (`ip link set <pf> vf <n> vlan <segment>`)
 * and its spoof check keeps the guest on the MAC Outrig gave it.
 *
 * readSriovNics reads what the NICs offer from sysfs (the only I/O here); parseVfLinkInfo reads what
 * the kernel says each VF is set to; VfAllocator decides which guest NIC gets which VF, and says
 * which fallback (macvtap or a tap on the network's bridge) a NIC gets when no VF can be had, and why.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SEGMENT_MAX, SEGMENT_MIN } from './ipam.ts';
import { VLAN_MAX } from './vlan-plan.ts';
import type { Command } from './vxlan-plan.ts';

interface SriovVf {
  index: number;
  pciAddress: string;
  /** The driver holding the VF (iavf, igbvf, mlx5_core, vfio-pci...); undefined when none is bound. */
  driver?: string;
  /** The VF's own network device on the host, while a network driver holds it. */
  netdev?: string;
}

export interface SriovNic {
  name: string;
  /**
   * physical: a NIC (SR-IOV or not); vf: the host-side netdev of some NIC's VF (it has a physfn
   * link), which cannot have VFs of its own; virtual: no device at all (lo, bridges, VXLAN, taps).
   */
  kind: 'physical' | 'vf' | 'virtual';
  /** What `device` points at: a PCI address, or a virtio device (`virtio2`) for virtio_net. */
  device?: string;
  pciAddress?: string;
  driver?: string;
  /** device/sriov_totalvfs: 0 when the file is absent, i.e. the NIC has no SR-IOV. */
  totalVfs: number;
  /** device/sriov_numvfs: how many VFs are enabled now. */
  numVfs: number;
  vfs: SriovVf[];
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

function missing(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/**
 * A sysfs entry that may be a link. In sysfs it is a symlink, whose children the kernel reaches
 * through the link itself; in a recorded fixture it may be a small file holding the link's target,
 * resolved against where the file sits (fixtures keep sysfs's layout, so `..` lands where it
 * would). A plain directory is its own target-less self.
 */
async function follow(path: string): Promise<{ dir: string; target?: string } | undefined> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if (missing(e)) return undefined;
    throw e;
  }
  if (st.isSymbolicLink()) return { dir: path, target: await readlink(path) };
  if (st.isDirectory()) return { dir: path };
  if (st.isFile()) {
    const target = (await readFile(path, 'utf8')).trim();
    return { dir: resolve(dirname(path), target), target };
  }
  return undefined;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (missing(e)) return undefined;
    throw e;
  }
}

async function readCount(path: string): Promise<number | undefined> {
  const text = await readText(path);
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text.trim())) throw new Error(`${path}: expected a count, read ${JSON.stringify(text.trim())}`);
  return Number(text.trim());
}

async function list(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch (e) {
    if (missing(e)) return [];
    throw e;
  }
}

/** The name a link points at (`driver` → `ice`), undefined when there is no link. */
async function linkName(path: string): Promise<string | undefined> {
  const l = await follow(path);
  return l?.target ? basename(l.target) : undefined;
}

/** PCI_SLOT_NAME from a device's uevent: how a device directory (not a link) tells its own address. */
async function slotName(dir: string): Promise<string | undefined> {
  return /^PCI_SLOT_NAME=(\S+)$/m.exec((await readText(join(dir, 'uevent'))) ?? '')?.[1];
}

async function readVfs(deviceDir: string): Promise<SriovVf[]> {
  const links = (await list(deviceDir))
    .map((n) => /^virtfn(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[0], index: Number(m[1]) }))
    .sort((a, b) => a.index - b.index);
  const vfs: SriovVf[] = [];
  for (const { name, index } of links) {
    const path = join(deviceDir, name);
    const l = (await follow(path))!;
    const pciAddress = l.target ? basename(l.target) : await slotName(l.dir);
    if (!pciAddress || !PCI_ADDRESS.test(pciAddress)) throw new Error(`${path}: not a link to a VF's PCI device (${l.target ?? 'no target'})`);
    const vf: SriovVf = { index, pciAddress };
    const driver = await linkName(join(l.dir, 'driver'));
    if (driver) vf.driver = driver;
    // A VF bound to vfio-pci (or to nothing) has no network device on the host.
    const netdev = (await list(join(l.dir, 'net')))[0];
    if (netdev) vf.netdev = netdev;
    vfs.push(vf);
  }
  return vfs;
}

async function readNic(name: string, dir: string): Promise<SriovNic> {
  const dev = await follow(join(dir, 'device'));
  if (!dev) return { name, kind: 'virtual', totalVfs: 0, numVfs: 0, vfs: [] };
  const slot = await slotName(dev.dir);
  const device = dev.target ? basename(dev.target) : slot;
  const nic: SriovNic = {
    name,
    kind: (await follow(join(dev.dir, 'physfn'))) ? 'vf' : 'physical',
    totalVfs: (await readCount(join(dev.dir, 'sriov_totalvfs'))) ?? 0,
    numVfs: (await readCount(join(dev.dir, 'sriov_numvfs'))) ?? 0,
    vfs: await readVfs(dev.dir),
  };
  if (device) nic.device = device;
  const pciAddress = slot ?? (device && PCI_ADDRESS.test(device) ? device : undefined);
  if (pciAddress) nic.pciAddress = pciAddress;
  const driver = await linkName(join(dev.dir, 'driver'));
  if (driver) nic.driver = driver;
  return nic;
}

/**
 * Every interface under a directory shaped like /sys/class/net, in name order, with what its
 * device offers. Interfaces without SR-IOV come back too (totalVfs 0), so the caller can say why a
 * guest got no VF.
 */
export async function readSriovNics(sysClassNet: string): Promise<SriovNic[]> {
  const out: SriovNic[] = [];
  for (const name of (await readdir(sysClassNet)).sort()) {
    // The bonding driver's control file lives among the interfaces; it is not one.
    if (name === 'bonding_masters') continue;
    const entry = await follow(join(sysClassNet, name));
    if (entry) out.push(await readNic(name, entry.dir));
  }
  return out;
}

interface VfLinkInfo {
  index: number;
  /** The MAC the host set for the VF; undefined while none is (the kernel reports 00:00:00:00:00:00). */
  mac?: string;
  /** The VLAN the NIC tags the VF's traffic with; undefined for none (VLAN 0). */
  vlan?: number;
  qos?: number;
  /** Undefined where the driver does not report it. */
  spoofchk?: boolean;
  trust?: boolean;
  linkState?: 'auto' | 'enable' | 'disable';
}

interface RawVfInfo {
  vf?: unknown;
  address?: unknown;
  mac?: unknown;
  vlan_list?: unknown;
  vlan?: unknown;
  qos?: unknown;
  spoofchk?: unknown;
  trust?: unknown;
  link_state?: unknown;
}

const positive = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);

/**
 * The VFs of `ip -j -d link show <pf>` (its `vfinfo_list`). iproute2 names the MAC `address` since
 * 5.3 and `mac` before; it prints `vlan_list` (one object per tag, `{}` for VLAN 0) when the kernel
 * sends the VLAN list and plain `vlan`/`qos` keys otherwise, and leaves out any zero VLAN or QoS.
 * A link without `vfinfo_list` has no VFs (a NIC without SR-IOV, or a driver that reports none).
 */
export function parseVfLinkInfo(ipJson: unknown): VfLinkInfo[] {
  if (!Array.isArray(ipJson)) throw new Error('ip -j link show did not print a list');
  if (ipJson.length !== 1) throw new Error(`ip -j link show <pf> printed ${ipJson.length} links; expected the PF alone`);
  const link = ipJson[0] as { ifname?: string; vfinfo_list?: unknown };
  if (link.vfinfo_list === undefined) return [];
  if (!Array.isArray(link.vfinfo_list)) throw new Error(`${link.ifname ?? 'link'}: vfinfo_list is not a list`);
  return (link.vfinfo_list as RawVfInfo[])
    .map((v, i) => {
      if (typeof v !== 'object' || v === null || typeof v.vf !== 'number' || !Number.isInteger(v.vf) || v.vf < 0) {
        throw new Error(`${link.ifname ?? 'link'}: vfinfo_list entry ${i} has no VF number: ${JSON.stringify(v)}`);
      }
      const out: VfLinkInfo = { index: v.vf };
      const mac = v.address ?? v.mac;
      if (typeof mac === 'string' && !/^(00:)*00$/.test(mac)) out.mac = mac.toLowerCase();
      const tag = Array.isArray(v.vlan_list) ? (v.vlan_list[0] as { vlan?: unknown; qos?: unknown } | undefined) : { vlan: v.vlan, qos: v.qos };
      const vlan = positive(tag?.vlan);
      const qos = positive(tag?.qos);
      if (vlan !== undefined) out.vlan = vlan;
      if (qos !== undefined) out.qos = qos;
      if (typeof v.spoofchk === 'boolean') out.spoofchk = v.spoofchk;
      if (typeof v.trust === 'boolean') out.trust = v.trust;
      if (v.link_state === 'auto' || v.link_state === 'enable' || v.link_state === 'disable') out.linkState = v.link_state;
      return out;
    })
    .sort((a, b) => a.index - b.index);
}

/** A request that cannot be met as asked; `command` is what would fix it, when one would. */
export class SriovError extends Error {
  override name = 'SriovError';
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
  }
}

export interface VfRequest {
  instanceId: string;
  nicIndex: number;
  networkSegment: number;
  mac: string;
  /** Take the VF from this NIC only (an error if it cannot have VFs at all). */
  pf?: string;
}

/** A VF already given to a guest NIC (e.g. read back from the store when the agent starts). */
export interface HeldVf {
  instanceId: string;
  nicIndex: number;
  pf: string;
  vfIndex: number;
}

interface VfAssignment {
  mode: 'vf';
  pf: string;
  vfIndex: number;
  pciAddress: string;
  /** The VF's driver now: QEMU needs vfio-pci, so anything else must be unbound first. */
  vfDriver?: string;
  vlan: number;
  /** Run before the guest starts: the NIC sets the VF's MAC and VLAN, checks spoofing, does not trust the guest. */
  commands: Command[];
}

interface MacvtapAssignment {
  mode: 'macvtap';
  /** The NIC the macvtap goes on, tagged with `vlan`. */
  lower: string;
  vlan: number;
  reason: string;
}

interface TapAssignment {
  mode: 'tap';
  reason: string;
}

export type NicAssignment = VfAssignment | MacvtapAssignment | TapAssignment;

type Placement = { mode: 'vf'; pf: string; vfIndex: number } | { mode: 'macvtap'; lower: string; reason: string } | { mode: 'tap'; reason: string };

type Holding = { instanceId: string; nicIndex: number } & Placement;

interface VfAllocatorOptions {
  /**
   * What a NIC gets when no VF can be had. tap (the default): a tap on the network's bridge, which
   * every backend has. macvtap: a macvtap on a physical NIC's VLAN, closer to the wire, for hosts
   * whose networks are VLANs on that NIC; it falls back to a tap where it cannot be had.
   */
  fallback?: 'tap' | 'macvtap';
}

const holdKey = (instanceId: string, nicIndex: number) => `${instanceId}\0${nicIndex}`;
const vfKey = (pf: string, vfIndex: number) => `${pf}\0${vfIndex}`;
const numvfsPath = (pf: string) => `/sys/class/net/${pf}/device/sriov_numvfs`;
const enableCommand = (nic: SriovNic) => `echo ${nic.totalVfs} > ${numvfsPath(nic.name)}`;

/**
 * Which guest NIC has which VF, for one host. Allocation is idempotent per instance and NIC index
 * (asking again gets the same VF, or the same fallback), releasing an instance frees everything it
 * held, and no VF is ever held twice. Pure: the caller reads the NICs (readSriovNics), runs the
 * commands and stores the holdings.
 */
export class VfAllocator {
  private readonly nics: Map<string, SriovNic>;
  private readonly fallback: 'tap' | 'macvtap';
  private readonly holds = new Map<string, Holding>();
  /** VF → the hold key of the guest NIC that has it. */
  private readonly vfHolders = new Map<string, string>();

  constructor(nics: readonly SriovNic[], held: readonly HeldVf[] = [], options: VfAllocatorOptions = {}) {
    this.nics = new Map(nics.map((n) => [n.name, n]));
    this.fallback = options.fallback ?? 'tap';
    for (const h of held) {
      const who = `${h.instanceId} NIC ${h.nicIndex}`;
      const nic = this.nics.get(h.pf);
      if (!nic) throw new SriovError(`${who} holds VF ${h.vfIndex} of ${h.pf}, which this host does not have`);
      if (!nic.vfs.some((v) => v.index === h.vfIndex)) {
        throw new SriovError(
          `${who} holds VF ${h.vfIndex} of ${h.pf}, which has ${nic.vfs.length ? `VFs ${nic.vfs.map((v) => v.index).join(', ')}` : 'no VFs'} enabled`,
        );
      }
      const other = this.vfHolders.get(vfKey(h.pf, h.vfIndex));
      if (other !== undefined) {
        const o = this.holds.get(other)!;
        throw new SriovError(`VF ${h.vfIndex} of ${h.pf} is held by both ${o.instanceId} NIC ${o.nicIndex} and ${who}`);
      }
      if (this.holds.has(holdKey(h.instanceId, h.nicIndex))) throw new SriovError(`${who} holds two VFs`);
      this.hold({ instanceId: h.instanceId, nicIndex: h.nicIndex, mode: 'vf', pf: h.pf, vfIndex: h.vfIndex });
    }
  }

  allocate(req: VfRequest): NicAssignment {
    const mac = checkRequest(req);
    const key = holdKey(req.instanceId, req.nicIndex);
    const have = this.holds.get(key);
    if (have) {
      if (req.pf !== undefined && have.mode === 'vf' && have.pf !== req.pf) {
        throw new SriovError(
          `${req.instanceId} NIC ${req.nicIndex} already has VF ${have.vfIndex} of ${have.pf}; release it before asking for one of ${req.pf}`,
        );
      }
      if (have.mode !== 'tap' && req.networkSegment > VLAN_MAX) {
        const what = have.mode === 'vf' ? `VF ${have.vfIndex} of ${have.pf}` : `a macvtap on ${have.lower}`;
        throw new SriovError(
          `${req.instanceId} NIC ${req.nicIndex} has ${what}, which cannot carry segment ${req.networkSegment} (above ${VLAN_MAX}, the last VLAN id); release it first`,
        );
      }
      return this.assignment(have, req.networkSegment, mac);
    }
    const pinned = req.pf === undefined ? undefined : this.pinned(req.pf);
    let placement: Placement;
    if (req.networkSegment > VLAN_MAX) {
      // A VF (or a macvtap) reaches a network only through the tag the NIC adds; a VXLAN-only
      // network lives on the host's bridge, so the guest must be there too.
      placement = {
        mode: 'tap',
        reason: `segment ${req.networkSegment} is above ${VLAN_MAX}, the last 802.1Q VLAN id: a VF joins a network only by the VLAN tag its NIC adds, so this VXLAN-only network is reached through a tap on its bridge`,
      };
    } else {
      placement = this.freeVf(pinned ? [pinned] : this.candidates()) ?? this.fallbackFor(this.noVfReason(pinned), pinned);
    }
    const h = { instanceId: req.instanceId, nicIndex: req.nicIndex, ...placement } as Holding;
    this.hold(h);
    return this.assignment(h, req.networkSegment, mac);
  }

  /** Frees what an instance holds (one NIC of it, or all); returns what was freed. */
  release(instanceId: string, nicIndex?: number): Holding[] {
    const freed = [...this.holds.values()].filter((h) => h.instanceId === instanceId && (nicIndex === undefined || h.nicIndex === nicIndex));
    for (const h of freed) {
      this.holds.delete(holdKey(h.instanceId, h.nicIndex));
      if (h.mode === 'vf') this.vfHolders.delete(vfKey(h.pf, h.vfIndex));
    }
    return freed.sort(byHolder);
  }

  /** Every guest NIC's placement, in instance and NIC order. */
  holdings(): Holding[] {
    return [...this.holds.values()].sort(byHolder);
  }

  /** What to store so a new allocator (after a restart) knows which VFs are taken. */
  heldVfs(): HeldVf[] {
    return this.holdings().flatMap((h) => (h.mode === 'vf' ? [{ instanceId: h.instanceId, nicIndex: h.nicIndex, pf: h.pf, vfIndex: h.vfIndex }] : []));
  }

  /** Unheld VFs of one NIC, or of all. */
  freeVfs(pf?: string): number {
    return this.candidates()
      .filter((n) => pf === undefined || n.name === pf)
      .reduce((sum, n) => sum + n.vfs.filter((v) => !this.vfHolders.has(vfKey(n.name, v.index))).length, 0);
  }

  private hold(h: Holding): void {
    const key = holdKey(h.instanceId, h.nicIndex);
    this.holds.set(key, h);
    if (h.mode === 'vf') this.vfHolders.set(vfKey(h.pf, h.vfIndex), key);
  }

  /** The host's NICs (not VFs' netdevs, not virtual devices), in name order. */
  private physical(): SriovNic[] {
    return [...this.nics.values()].filter((n) => n.kind === 'physical').sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** NICs that can give VFs now. */
  private candidates(): SriovNic[] {
    return this.physical().filter((n) => n.vfs.length > 0);
  }

  /** A NIC asked for by name, or why it cannot give VFs at all. */
  private pinned(pf: string): SriovNic {
    const nic = this.nics.get(pf);
    if (!nic) {
      const physical = this.physical().map((n) => n.name);
      throw new SriovError(`no interface named ${pf} on this host (its NICs: ${physical.join(', ') || 'none'})`);
    }
    if (nic.kind === 'virtual') throw new SriovError(`${pf} is a virtual device, not a NIC: it has no VFs`);
    if (nic.kind === 'vf') throw new SriovError(`${pf} is itself a VF's network device (it has a physfn link): VFs come from the physical function`);
    if (nic.totalVfs === 0) throw new SriovError(noSriov(nic));
    if (nic.numVfs === 0) {
      throw new SriovError(
        `${pf} can have up to ${nic.totalVfs} VFs but none are enabled (sriov_numvfs is 0): enable them with \`${enableCommand(nic)}\` (any number from 1 to ${nic.totalVfs})`,
        enableCommand(nic),
      );
    }
    if (nic.vfs.length === 0) throw new SriovError(`${pf} has ${nic.numVfs} VFs enabled but none of its device/virtfn links could be read`);
    return nic;
  }

  /**
   * The lowest free VF of the NIC with the most free VFs (ties: name order), which spreads guests
   * over the ports; undefined when every VF is held.
   */
  private freeVf(nics: SriovNic[]): Placement | undefined {
    let best: { nic: SriovNic; free: SriovVf[] } | undefined;
    for (const nic of nics) {
      const free = nic.vfs.filter((v) => !this.vfHolders.has(vfKey(nic.name, v.index)));
      if (free.length && (!best || free.length > best.free.length)) best = { nic, free };
    }
    return best && { mode: 'vf', pf: best.nic.name, vfIndex: best.free[0]!.index };
  }

  private noVfReason(pinned: SriovNic | undefined): string {
    if (pinned) return `all ${pinned.vfs.length} VFs of ${pinned.name} are assigned`;
    const physical = this.physical();
    if (!physical.length) {
      const others = [...this.nics.keys()].sort();
      return `this host has no physical NIC${others.length ? ` (only ${others.join(', ')})` : ''}`;
    }
    return physical
      .map((n) => {
        if (n.totalVfs === 0) return noSriov(n);
        if (n.numVfs === 0) return `${n.name} has no VFs enabled (sriov_numvfs is 0 of ${n.totalVfs}; \`${enableCommand(n)}\` enables them)`;
        if (n.vfs.length === 0) return `${n.name} has ${n.numVfs} VFs enabled but no readable virtfn links`;
        return `all ${n.vfs.length} VFs of ${n.name} are assigned`;
      })
      .join('; ');
  }

  private fallbackFor(reason: string, pinned: SriovNic | undefined): Placement {
    if (this.fallback === 'tap') return { mode: 'tap', reason };
    const lower = pinned ?? this.physical()[0];
    if (!lower) return { mode: 'tap', reason: `${reason}; a macvtap needs a physical NIC to sit on` };
    return { mode: 'macvtap', lower: lower.name, reason };
  }

  private assignment(h: Holding, segment: number, mac: string): NicAssignment {
    if (h.mode === 'tap') return { mode: 'tap', reason: h.reason };
    if (h.mode === 'macvtap') return { mode: 'macvtap', lower: h.lower, vlan: segment, reason: h.reason };
    const vf = this.nics.get(h.pf)!.vfs.find((v) => v.index === h.vfIndex)!;
    const out: VfAssignment = {
      mode: 'vf',
      pf: h.pf,
      vfIndex: h.vfIndex,
      pciAddress: vf.pciAddress,
      vlan: segment,
      commands: [vfCommand(h.pf, h.vfIndex, mac, segment)],
    };
    if (vf.driver) out.vfDriver = vf.driver;
    return out;
  }
}

/**
 * `ip link set <pf> vf <n> mac <mac> vlan <segment> spoofchk on trust off`: the NIC drops frames
 * the guest sends from any other MAC and refuses it promiscuous mode or other MACs (trust off).
 */
export function vfCommand(pf: string, vfIndex: number, mac: string, segment: number): Command {
  if (!Number.isInteger(segment) || segment < 1 || segment > VLAN_MAX)
    throw new SriovError(`segment ${segment} cannot be a VF's VLAN (802.1Q VLAN ids are 1-${VLAN_MAX})`);
  return ['ip', 'link', 'set', pf, 'vf', String(vfIndex), 'mac', mac, 'vlan', String(segment), 'spoofchk', 'on', 'trust', 'off'];
}

/**
 * The same for a VF on a port that is itself in the network (a dedicated host's authenticated
 * port): no tag, the switch side places the whole port.
 */
export function untaggedVfCommand(pf: string, vfIndex: number, mac: string): Command {
  return ['ip', 'link', 'set', pf, 'vf', String(vfIndex), 'mac', mac, 'vlan', '0', 'spoofchk', 'on', 'trust', 'off'];
}

function noSriov(nic: SriovNic): string {
  return `${nic.name} has no SR-IOV (no sriov_totalvfs${nic.driver ? `; driver ${nic.driver}` : ''})`;
}

function byHolder(a: Holding, b: Holding): number {
  return a.instanceId === b.instanceId ? a.nicIndex - b.nicIndex : a.instanceId < b.instanceId ? -1 : 1;
}

/** Refuses a malformed request; returns its MAC in the lower case `ip` prints. */
function checkRequest(req: VfRequest): string {
  if (typeof req.instanceId !== 'string' || !req.instanceId) throw new SriovError('a VF request needs an instance id');
  if (!Number.isInteger(req.nicIndex) || req.nicIndex < 0 || req.nicIndex > 9) throw new SriovError(`NIC index ${req.nicIndex} is out of range (0-9)`);
  if (!Number.isInteger(req.networkSegment) || req.networkSegment < SEGMENT_MIN || req.networkSegment > SEGMENT_MAX) {
    throw new SriovError(`segment ${req.networkSegment} is out of range (${SEGMENT_MIN}-${SEGMENT_MAX})`);
  }
  const mac = typeof req.mac === 'string' ? req.mac.toLowerCase() : '';
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw new SriovError(`${JSON.stringify(req.mac)} is not a MAC address (six hex pairs with colons)`);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new SriovError(`${mac} is a multicast address; a VF needs a unicast MAC`);
  if (mac === '00:00:00:00:00:00') throw new SriovError('00:00:00:00:00:00 is no MAC: the NIC would leave the VF without one');
  return mac;
}
