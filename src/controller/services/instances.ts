/**
 * Instance use cases the API calls: create one (checks that need the store, the placement verdict,
 * address claims, its boot volume, and every step undone if a later one fails), power actions and delete.
 */
import { formatBytes } from '../../common/bytes.ts';
import { setCondition } from '../../model/conditions.ts';
import type { Image } from '../../model/image.ts';
import type { Instance, InstanceStatus } from '../../model/instance.ts';
import type { InstanceNic, Network } from '../../model/network.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import type { Volume } from '../../model/volume.ts';
import { formatIpv4, macForAddress, parseIpv4, pickAddress, subnetOf } from '../../network/index.ts';
import type { Ctx } from '../context.ts';
import { enqueuePools } from '../hosts/wake.ts';
import { capacity, decide, type Admitted } from '../instances/placement.ts';
import { newVolumeNeed } from '../placement/capacity.ts';
import { everFits, type Verdict } from '../placement/scheduler.ts';
import { ServiceError } from './errors.ts';

export interface CreateInstanceInput {
  name: string;
  image?: string;
  bootVolume?: string;
  volumes?: string[];
  rootDiskBytes?: number;
  kernelArgs?: string;
  readyMarker?: string;
  vcpus: number;
  memoryMiB: number;
  tenant?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  forwardPorts?: number[];
  networks?: string[];
  start?: boolean;
  waitForRoom?: boolean;
}

export type PowerAction = 'start' | 'stop' | 'restart';

/** Phases in which an instance's VM runs (or boots): deleting it then kills a live machine, so it takes force. */
const RUNNING_PHASES = new Set(['starting', 'running']);

/** What a create has checked and looked up before it writes anything. */
interface Checked {
  tenant: string;
  image?: Image;
  boot?: Volume;
  extra: Volume[];
  rootBytes: number;
  nets: Network[];
}

/** An instance refused because the hosts that may take it have no room now. */
function noRoom(name: string, why: string): ServiceError {
  return new ServiceError(
    422,
    'no_room',
    `no host has room for instance ${name} now: ${why}. Free some room, or create it with waitForRoom (outrig instance create --wait-for-room) to keep it pending until a host has room`,
  );
}

export class InstanceService {
  /** `place` is the placement decision (tests count it). */
  constructor(
    private readonly ctx: Ctx,
    private readonly place: typeof decide = decide,
  ) {}

  /**
   * Creates an instance. Unless it waits for room, its placement is decided once, under the placement
   * lock, together with its address claims and its record: placed there and then, or refused with
   * no_room, so no other instance can take the room between the check and the placement.
   */
  async create(b: CreateInstanceInput): Promise<Instance> {
    const { ctx } = this;
    const c = await this.check(b);
    const id = ctx.store.instances.newId();
    const { inst, verdict } = await ctx.serialize(async () => {
      let verdict: Verdict | undefined;
      let admitted: Admitted | undefined;
      if (!b.waitForRoom) {
        const volumes = [
          ...(c.rootBytes ? [{ sizeBytes: c.rootBytes }] : []),
          ...[c.boot, ...c.extra].filter((v) => !!v).map((v) => ({ sizeBytes: v.spec.sizeBytes, hostId: v.status.hostId })),
        ];
        const draft = {
          id,
          spec: { vcpus: b.vcpus, memoryMiB: b.memoryMiB, tenant: c.tenant, powerState: 'stopped' as const, forwardPorts: [], restartSeq: 0 },
        };
        ({ verdict, admitted } = await this.place(ctx, draft, volumes));
        if (verdict.kind === 'no-room') throw noRoom(b.name, verdict.message);
      }
      const nics = c.nets.length ? await this.claimNics(id, c.nets) : undefined;
      const status: InstanceStatus = { phase: 'pending', conditions: [], network: { forwards: [] }, observedGeneration: 0 };
      if (verdict?.kind === 'place') {
        // Recorded as the reconciler records a placement: host and memory in one write.
        status.phase = 'scheduled';
        status.hostId = verdict.hostId;
        status.hostName = verdict.hostName;
        status.memory = admitted!.get(verdict.hostId);
        status.conditions = setCondition(
          [],
          { type: 'Scheduled', status: 'True', reason: 'Placed', message: `placed on ${verdict.hostName}` },
          ctx.clock.now(),
        );
      }
      try {
        const inst = await ctx.store.instances.create({
          id,
          name: b.name,
          labels: b.labels,
          annotations: b.annotations,
          spec: {
            image: c.image?.name,
            bootVolume: c.boot?.id,
            kernelArgs: b.kernelArgs,
            readyMarker: b.readyMarker,
            vcpus: b.vcpus,
            memoryMiB: b.memoryMiB,
            tenant: c.tenant,
            powerState: b.start === false ? 'stopped' : 'running',
            forwardPorts: b.forwardPorts ?? c.image?.spec.guestPorts ?? [],
            nics,
            restartSeq: 0,
          },
          status,
        });
        return { inst, verdict };
      } catch (e) {
        await ctx.store.claims.releaseInstance(id);
        throw e;
      }
    });
    const made = await this.addVolumes(inst, b.name, c);
    for (const v of made) ctx.runtime.enqueue('volume', v);
    if (verdict?.kind === 'place') {
      ctx.log.info({ instance: inst.name, host: verdict.hostName, memory: inst.status.memory }, 'instance scheduled');
      enqueuePools(ctx);
      for (const n of inst.spec.nics ?? []) ctx.runtime.enqueue('network', n.network);
    }
    await ctx.runtime.reconcileNow('instance', inst.id);
    const placed = await ctx.store.instances.get(inst.id);
    const scheduled = placed?.status.conditions.find((x) => x.type === 'Scheduled');
    if (!b.waitForRoom && placed && !placed.status.hostId && scheduled?.reason === 'NoRoom') {
      // No host was up to take it when it was created, and those up now have no room: deleted the
      // usual way (its volumes and addresses with it), unless it has been placed since after all.
      let undo = false;
      await ctx.status.record(ctx.store.instances, inst.id, (cur) => {
        undo = !cur.status.hostId && cur.status.phase !== 'deleting';
        return undo ? { status: { ...cur.status, phase: 'deleting' as const } } : null;
      });
      if (undo) {
        await ctx.runtime.reconcileNow('instance', inst.id);
        throw noRoom(b.name, scheduled.message);
      }
    }
    return (await ctx.store.instances.get(inst.id)) ?? inst;
  }

  /** Starts, stops or restarts an instance; `force` powers it off at once instead of asking the guest. */
  async power(ref: string, action: PowerAction, force: boolean): Promise<Instance> {
    const { ctx } = this;
    const inst = await ctx.store.instances.mustFind(ref);
    if (inst.status.phase === 'deleting') throw new ServiceError(409, 'deleting', `instance ${inst.name} is being deleted`);
    await ctx.store.instances.update(inst.id, (cur) => ({ spec: powerSpec(cur, action, force), newGeneration: true }));
    await ctx.runtime.reconcileNow('instance', inst.id);
    return ctx.store.instances.mustFind(inst.id);
  }

  /** Deletes an instance and every file of its VM; a running one only with `force` (its VM is killed). */
  async remove(ref: string, force: boolean): Promise<Instance> {
    const { ctx } = this;
    const inst = await ctx.store.instances.mustFind(ref);
    if (RUNNING_PHASES.has(inst.status.phase) && !force) {
      throw new ServiceError(
        409,
        'running',
        `instance ${inst.name} is ${inst.status.phase}: stop it first (outrig instance stop ${inst.name}), or delete it running with --force (force=true)`,
      );
    }
    const updated = await ctx.status.requestDeletion(ctx.store.instances, inst.id);
    await ctx.runtime.reconcileNow('instance', inst.id);
    return (await ctx.store.instances.get(inst.id)) ?? updated;
  }

  /** Everything a create checks against the store before it writes, in the order the API has always answered. */
  private async check(b: CreateInstanceInput): Promise<Checked> {
    const { store } = this.ctx;
    if (!b.image === !b.bootVolume) throw new ServiceError(400, 'invalid_request', 'give exactly one of image and bootVolume');
    const tenant = await store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ServiceError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    const limits = (tenant.spec.memory ?? []).map((e) => e.limitMiB);
    if (limits.length && b.memoryMiB > Math.max(...limits)) {
      throw new ServiceError(
        422,
        'over_tenant_limit',
        `${b.memoryMiB} MiB is more than tenant ${tenant.name}'s memory limit (at most ${Math.max(...limits)} MiB in any of its pools)`,
      );
    }
    const image = b.image ? await store.images.find(b.image) : undefined;
    if (b.image && !image) throw new ServiceError(422, 'unknown_image', `image '${b.image}' does not exist (see: outrig image list)`);
    if (image && image.status.phase !== 'ready') throw new ServiceError(409, 'image_not_ready', `image '${image.name}' is still ${image.status.phase}`);
    if (b.kernelArgs && image?.spec.kind !== 'kernel') throw new ServiceError(422, 'invalid_request', 'kernelArgs only apply to kernel images');
    const hosts = await capacity(this.ctx);
    const fit = everFits(
      { vcpus: b.vcpus, memoryMiB: b.memoryMiB },
      hosts.map((h) => ({ name: h.name, allocatable: h.allocatable })),
    );
    if (!fit.ok) throw new ServiceError(422, 'insufficient_capacity', fit.message);
    const usable = async (ref: string) => {
      const v = await store.volumes.find(ref);
      if (!v) throw new ServiceError(422, 'unknown_volume', `volume '${ref}' does not exist`);
      if (v.spec.tenant !== tenant.name) throw new ServiceError(422, 'tenant_mismatch', `volume '${v.name}' belongs to tenant ${v.spec.tenant}`);
      if (v.spec.attachedTo || v.spec.ownedBy || v.status.phase === 'deleting')
        throw new ServiceError(409, 'volume_in_use', `volume '${v.name}' is in use or being deleted`);
      if ((await store.instances.list()).some((i) => i.spec.bootVolume === v.id))
        throw new ServiceError(409, 'volume_in_use', `volume '${v.name}' is another instance's boot volume`);
      return v;
    };
    const boot = b.bootVolume ? await usable(b.bootVolume) : undefined;
    const extra: Volume[] = [];
    for (const ref of b.volumes ?? []) extra.push(await usable(ref));
    if (boot && extra.some((v) => v.id === boot.id)) throw new ServiceError(422, 'invalid_request', 'the boot volume is attached already');
    const pinned = new Set([boot, ...extra].map((v) => v?.status.hostId).filter(Boolean));
    if (pinned.size > 1) throw new ServiceError(422, 'volumes_apart', 'the volumes are on different hosts; an instance can only use volumes of its own host');
    let rootBytes = 0;
    if (image?.spec.kind === 'disk') {
      rootBytes = b.rootDiskBytes ?? image.spec.virtualSizeBytes;
      if (rootBytes < image.spec.virtualSizeBytes)
        throw ServiceError.field(
          'rootDiskBytes',
          `must be at least the image's size, ${formatBytes(image.spec.virtualSizeBytes)} (${image.spec.virtualSizeBytes} bytes)`,
          422,
        );
      if (await store.volumes.find(`${b.name}-root`)) throw new ServiceError(409, 'conflict', `volume '${b.name}-root' (for the boot disk) already exists`);
    }
    // Its volumes not placed yet go where it goes: some host must be able to hold them.
    const diskBytes = [rootBytes, ...[boot, ...extra].filter((v) => v && !v.status.hostId).map((v) => v!.spec.sizeBytes)]
      .filter((n) => n > 0)
      .reduce((n, size) => n + newVolumeNeed(size).bytes, 0);
    const diskFit = everFits(
      { vcpus: b.vcpus, memoryMiB: b.memoryMiB, diskBytes },
      hosts.map((h) => ({ name: h.name, allocatable: h.allocatable, disk: h.disk })),
    );
    if (!diskFit.ok) throw new ServiceError(422, 'insufficient_storage', diskFit.message);
    const nets: Network[] = [];
    for (const ref of b.networks ?? []) {
      const n = await store.networks.find(ref);
      if (!n) throw new ServiceError(422, 'unknown_network', `network '${ref}' does not exist (see: outrig network list)`);
      if (n.spec.tenant !== tenant.name) throw new ServiceError(422, 'tenant_mismatch', `network '${n.name}' belongs to tenant ${n.spec.tenant}`);
      nets.push(n);
    }
    if (new Set(nets.map((n) => n.id)).size !== nets.length) throw new ServiceError(400, 'invalid_request', 'body/networks: a network is named twice');
    if (await store.instances.find(b.name)) throw new ServiceError(409, 'conflict', `Instance '${b.name}' already exists`);
    return { tenant: tenant.name, image, boot, extra, rootBytes, nets };
  }

  /** An address on each network; the caller holds the placement lock, so a network being deleted cannot give one. */
  private async claimNics(instanceId: string, nets: Network[]): Promise<InstanceNic[]> {
    const { store } = this.ctx;
    const nics: InstanceNic[] = [];
    try {
      for (const n of nets) {
        const fresh = await store.networks.get(n.id);
        if (!fresh || fresh.status.phase !== 'active') throw new ServiceError(409, 'network_deleting', `network '${n.name}' is being deleted`);
        const subnet = subnetOf(fresh);
        const reserved = new Set(fresh.spec.gateway ? [parseIpv4(fresh.spec.gateway)!] : []);
        const addr = await store.claims.claimAddress(n.id, instanceId, (used) => pickAddress(subnet, reserved, used));
        if (addr === undefined) throw new ServiceError(409, 'network_full', `network '${n.name}' (${fresh.spec.subnet}) has no free address`);
        nics.push({
          network: n.id,
          networkName: n.name,
          address: formatIpv4(addr),
          prefix: subnet.prefix,
          gateway: fresh.spec.gateway,
          mac: macForAddress(addr),
        });
      }
      return nics;
    } catch (e) {
      await store.claims.releaseInstance(instanceId);
      throw e;
    }
  }

  /** Its boot volume from a disk image and the volumes to attach; all of the create undone if a step fails. Returns the volumes made. */
  private async addVolumes(inst: Instance, name: string, c: Checked): Promise<string[]> {
    const { store } = this.ctx;
    const made: string[] = [];
    try {
      if (c.image?.spec.kind === 'disk') {
        const root = await store.volumes.create({
          name: `${name}-root`,
          spec: { sizeBytes: c.rootBytes, tenant: c.tenant, source: { image: c.image.id }, ownedBy: inst.id },
          status: { phase: 'pending', conditions: [], observedGeneration: 0 },
        });
        made.push(root.id);
        await store.instances.update(inst.id, (cur) => ({ spec: { ...cur.spec, bootVolume: root.id } }));
      }
      for (const v of c.extra) await store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: inst.id } }));
      return made;
    } catch (e) {
      for (const v of c.extra)
        await store.volumes
          .update(v.id, (cur) => (cur.spec.attachedTo === inst.id ? { spec: { ...cur.spec, attachedTo: undefined } } : null))
          .catch(() => undefined);
      for (const id of made) await store.volumes.delete(id);
      await store.instances.delete(inst.id);
      await store.claims.releaseInstance(inst.id);
      throw e;
    }
  }
}

/** The spec a power action asks for. forceOff says how the stop or restart asked for now is done; a start clears it. */
function powerSpec(i: Instance, action: PowerAction, force: boolean): Instance['spec'] {
  if (action === 'start') return { ...i.spec, powerState: 'running', forceOff: undefined };
  if (action === 'stop') return { ...i.spec, powerState: 'stopped', forceOff: force || undefined };
  return i.spec.powerState === 'running'
    ? { ...i.spec, restartSeq: i.spec.restartSeq + 1, forceOff: force || undefined }
    : { ...i.spec, powerState: 'running', forceOff: undefined };
}
