/**
 * Volume and snapshot use cases the API calls: create a volume (empty, a clone of a snapshot or a
 * disk image, or rebuilt from a backup) with its disk room checked, delete (with its snapshots),
 * attach, detach, grow, snapshot, delete a snapshot, and find the snapshot a reference means.
 */
import { formatBytes } from '../../common/bytes.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import type { Snapshot, Volume, VolumeSource } from '../../model/volume.ts';
import type { Ctx } from '../context.ts';
import { newVolumeNeed } from '../placement/capacity.ts';
import { pickSnapshot } from '../snapshots/refs.ts';
import { ServiceError } from './errors.ts';
import type { PlacementService } from './placement.ts';

const MiB = 1024 * 1024;

export interface CreateVolumeInput {
  name: string;
  sizeBytes?: number;
  tenant?: string;
  blockSize?: number;
  source?: { snapshot: string } | { image: string } | { backup: string };
  host?: string;
  forInstance?: string;
  waitForRoom?: boolean;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface CloneInput {
  name: string;
  sizeBytes?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export class VolumeService {
  constructor(
    private readonly ctx: Ctx,
    private readonly placement: PlacementService,
  ) {}

  /** The snapshot a reference means (snapshots/refs.ts); `missing` is the status and code of a reference to nothing. */
  async findSnapshot(ref: string, missing: { status: number; code: string } = { status: 404, code: 'not_found' }): Promise<Snapshot> {
    const pick = pickSnapshot(ref, await this.ctx.store.snapshots.list(), await this.ctx.store.volumes.list());
    if (pick.ok) return pick.snapshot;
    throw pick.status === 404 ? new ServiceError(missing.status, missing.code, pick.message) : new ServiceError(pick.status, pick.code, pick.message);
  }

  /** Checks a new volume and creates it; refused when no host it may go to has disk room for it now, unless it waits for room. */
  async create(b: CreateVolumeInput): Promise<Volume> {
    const { store, runtime } = this.ctx;
    const tenant = await store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ServiceError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    if (b.blockSize !== undefined && (b.blockSize & (b.blockSize - 1)) !== 0) throw ServiceError.field('blockSize', 'must be a power of two');
    const host = b.host ? await store.hosts.find(b.host) : undefined;
    if (b.host && !host) throw new ServiceError(422, 'unknown_host', `host '${b.host}' does not exist`);
    const forInstance = b.forInstance ? await store.instances.find(b.forInstance) : undefined;
    if (b.forInstance && !forInstance) throw new ServiceError(422, 'unknown_instance', `instance '${b.forInstance}' does not exist`);
    if (forInstance && b.host)
      throw new ServiceError(400, 'invalid_request', 'give host or forInstance, not both: a volume made for an instance goes to its host');
    if (forInstance && forInstance.spec.tenant !== tenant.name)
      throw new ServiceError(
        422,
        'tenant_mismatch',
        `instance ${forInstance.name} belongs to tenant ${forInstance.spec.tenant}, the volume would to ${tenant.name}`,
      );
    /** The host the volume must go to, when known now: the one asked for, its instance's, or a clone's source volume's. */
    let target = host?.id ?? forInstance?.status.hostId;
    let source: VolumeSource | undefined;
    let minSize = MiB;
    if (b.source && 'snapshot' in b.source) {
      const snap = await this.findSnapshot(b.source.snapshot, { status: 422, code: 'unknown_snapshot' });
      if (snap.status.phase !== 'ready') throw new ServiceError(409, 'snapshot_not_ready', `snapshot '${snap.name}' is ${snap.status.phase}`);
      const vol = await store.volumes.get(snap.spec.volume);
      if (vol && vol.spec.tenant !== tenant.name)
        throw new ServiceError(422, 'tenant_mismatch', `snapshot '${snap.name}' belongs to tenant ${vol.spec.tenant}`);
      if (b.blockSize !== undefined) throw ServiceError.field('blockSize', 'cannot be chosen for a clone: it uses its source block size');
      if (b.host || forInstance) throw new ServiceError(400, 'invalid_request', "a clone lives on its source volume's host");
      minSize = snap.status.sizeBytes ?? vol?.spec.sizeBytes ?? MiB;
      source = { snapshot: snap.id };
      target = vol?.status.hostId;
    } else if (b.source && 'image' in b.source) {
      const img = await store.images.find(b.source.image);
      if (!img) throw new ServiceError(422, 'unknown_image', `image '${b.source.image}' does not exist`);
      if (img.spec.kind !== 'disk') throw new ServiceError(422, 'invalid_request', `image '${img.name}' is a ${img.spec.kind} image, not a disk image`);
      if (img.status.phase !== 'ready') throw new ServiceError(409, 'image_not_ready', `image '${img.name}' is still ${img.status.phase}`);
      minSize = img.spec.virtualSizeBytes;
      source = { image: img.id };
    } else if (b.source && 'backup' in b.source) {
      const bk = await store.backups.find(b.source.backup);
      if (!bk) throw new ServiceError(422, 'unknown_backup', `backup '${b.source.backup}' does not exist`);
      if (bk.status.phase !== 'completed' || !bk.status.result) throw new ServiceError(409, 'backup_not_ready', `backup '${bk.name}' is ${bk.status.phase}`);
      if (!bk.status.result.bmrReady) throw new ServiceError(422, 'not_bmr_ready', `backup '${bk.name}' is not BMR-ready: it cannot rebuild a disk`);
      const orig = bk.spec.volume ? await store.volumes.get(bk.spec.volume) : undefined;
      if (orig && orig.spec.tenant !== tenant.name)
        throw new ServiceError(422, 'tenant_mismatch', `backup '${bk.name}' is of a volume of tenant ${orig.spec.tenant}`);
      minSize = bk.status.sizeBytes ?? MiB;
      source = { backup: bk.id };
    }
    const sizeBytes = b.sizeBytes ?? (source ? minSize : undefined);
    if (sizeBytes === undefined) throw ServiceError.field('sizeBytes', 'is required for an empty volume');
    if (sizeBytes < minSize) throw ServiceError.field('sizeBytes', `must be at least the source's size, ${formatBytes(minSize)} (${minSize} bytes)`, 422);
    // Disk space, decided now where it can be (placement decides again, and may keep it pending): a
    // host it must go to that cannot hold it now, or no host that ever could, is refused; so is one
    // no host has room for now, unless the caller waits for room.
    const need = newVolumeNeed(sizeBytes);
    const fit = target ? await this.placement.diskFit(target, need) : await this.placement.diskFitAnywhere(tenant.name, need);
    if (!fit.ok && (target || fit.never)) throw new ServiceError(422, 'insufficient_storage', fit.message);
    if (!fit.ok && !b.waitForRoom) {
      throw new ServiceError(
        422,
        'insufficient_storage',
        `${fit.message}. Free some room, or create it with waitForRoom (outrig volume create --wait-for-room) to keep it pending until a host has room`,
      );
    }
    const v = await store.volumes.create({
      name: b.name,
      labels: b.labels,
      annotations: b.annotations,
      spec: { sizeBytes, tenant: tenant.name, blockSize: b.blockSize, source, host: b.host, forInstance: forInstance?.id },
      status: { phase: 'pending', conditions: [], observedGeneration: 0 },
    });
    await runtime.reconcileNow('volume', v.id);
    return (await store.volumes.get(v.id)) ?? v;
  }

  /** Makes a writable volume from a snapshot (of its volume's tenant); space is shared until written. */
  async clone(snapRef: string, b: CloneInput): Promise<Volume> {
    const snap = await this.findSnapshot(snapRef);
    const vol = await this.ctx.store.volumes.get(snap.spec.volume);
    return this.create({ ...b, tenant: vol?.spec.tenant, source: { snapshot: snap.id } });
  }

  /** Deletes a detached volume; its snapshots too with `recursive` (not while clones of them exist). */
  async remove(ref: string, recursive: boolean): Promise<Volume> {
    const { store, runtime } = this.ctx;
    const v = await store.volumes.mustFind(ref);
    if (v.spec.attachedTo) throw new ServiceError(409, 'in_use', `volume '${v.name}' is attached; detach it first`);
    if (v.spec.ownedBy) throw new ServiceError(409, 'in_use', `volume '${v.name}' is the boot disk of an instance and goes with it`);
    const bootOf = (await store.instances.list()).find((i) => i.spec.bootVolume === v.id);
    if (bootOf) throw new ServiceError(409, 'in_use', `volume '${v.name}' is the boot volume of instance ${bootOf.name}`);
    const snaps = (await store.snapshots.list()).filter((x) => x.spec.volume === v.id);
    if (snaps.length && !recursive) {
      throw new ServiceError(
        409,
        'has_snapshots',
        `volume '${v.name}' has snapshots: ${snaps.map((x) => x.name).join(', ')}; delete them first, or delete the volume with them (recursive: outrig volume delete ${v.name} --recursive)`,
      );
    }
    // Clones of its snapshots are volumes of their own that need them: they go first, by hand.
    const clones = (await Promise.all(snaps.map(async (x) => (await this.clonesOf(x.id)).map((c) => `${c} (of ${x.name})`)))).flat();
    if (clones.length) throw new ServiceError(409, 'has_clones', `volume '${v.name}' has snapshots with clones: ${clones.join(', ')}; delete the clones first`);
    // The snapshots live in the volume's file and go with it; their rows are marked so nothing new starts from them.
    for (const x of snaps) await this.ctx.status.requestDeletion(store.snapshots, x.id);
    const updated = await this.ctx.status.requestDeletion(store.volumes, v.id);
    await runtime.reconcileNow('volume', v.id);
    for (const x of snaps) runtime.enqueue('snapshot', x.id);
    return (await store.volumes.get(v.id)) ?? updated;
  }

  /** Attaches a volume to an instance of its tenant on its host (hot-plugged if it runs). */
  async attach(ref: string, instanceRef: string): Promise<Volume> {
    const { store, runtime } = this.ctx;
    const v = await store.volumes.mustFind(ref);
    const inst = await store.instances.mustFind(instanceRef);
    if (v.spec.attachedTo === inst.id) return v;
    if (v.spec.attachedTo || v.spec.ownedBy) throw new ServiceError(409, 'in_use', `volume '${v.name}' is attached elsewhere`);
    if ((await store.instances.list()).some((i) => i.spec.bootVolume === v.id)) throw new ServiceError(409, 'in_use', `volume '${v.name}' is a boot volume`);
    if (v.status.phase === 'deleting' || inst.status.phase === 'deleting')
      throw new ServiceError(409, 'deleting', 'the volume or the instance is being deleted');
    if (v.spec.tenant !== inst.spec.tenant)
      throw new ServiceError(422, 'tenant_mismatch', `volume '${v.name}' belongs to tenant ${v.spec.tenant}, instance ${inst.name} to ${inst.spec.tenant}`);
    if (v.status.hostId && inst.status.hostId && v.status.hostId !== inst.status.hostId) {
      const instHost = inst.status.hostName ?? inst.status.hostId;
      throw new ServiceError(
        422,
        'volumes_apart',
        `volume '${v.name}' is on host ${v.status.hostName ?? v.status.hostId}, instance ${inst.name} on ${instHost}: a volume is attached on its own host; make one there (outrig volume create NAME --size SIZE --for ${inst.name}, or --host ${instHost})`,
      );
    }
    const attached = (await store.volumes.list()).filter((x) => x.spec.attachedTo === inst.id).length;
    if (attached >= 7) throw new ServiceError(409, 'too_many_volumes', `instance ${inst.name} has ${attached} volumes attached, the most it can take`);
    await store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: inst.id } }));
    await runtime.reconcileNow('volume', v.id);
    await runtime.reconcileNow('instance', inst.id);
    return store.volumes.mustFind(v.id);
  }

  /** Detaches a volume from its instance (hot-unplugged if it runs); a boot disk stays. */
  async detach(ref: string): Promise<Volume> {
    const { store, runtime } = this.ctx;
    const v = await store.volumes.mustFind(ref);
    if (v.spec.ownedBy) throw new ServiceError(409, 'in_use', `volume '${v.name}' is the boot disk of an instance`);
    if (!v.spec.attachedTo) return v;
    const instanceId = v.spec.attachedTo;
    await store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: undefined } }));
    await runtime.reconcileNow('instance', instanceId);
    await runtime.reconcileNow('volume', v.id);
    return store.volumes.mustFind(v.id);
  }

  /** Grows a volume; its host must have room for the growth. */
  async resize(ref: string, sizeBytes: number): Promise<Volume> {
    const { ctx } = this;
    const { store } = ctx;
    const v = await store.volumes.mustFind(ref);
    if (sizeBytes < v.spec.sizeBytes) throw new ServiceError(422, 'invalid_request', `volumes only grow (now ${v.spec.sizeBytes} bytes)`);
    // Growing promises its host more: checked with placement held off, so two resizes never both take the last room.
    await ctx.serialize(async () => {
      const cur = await store.volumes.mustFind(v.id);
      const growth = sizeBytes - cur.spec.sizeBytes;
      if (growth > 0 && cur.status.hostId) {
        const fit = await this.placement.diskFit(cur.status.hostId, {
          bytes: growth,
          what: `volume ${cur.name} grown by ${formatBytes(growth)} to ${formatBytes(sizeBytes)}`,
        });
        if (!fit.ok) throw new ServiceError(422, 'insufficient_storage', fit.message);
      }
      await store.volumes.update(v.id, (c) => ({ spec: { ...c.spec, sizeBytes } }));
    });
    await ctx.runtime.reconcileNow('volume', v.id);
    return store.volumes.mustFind(v.id);
  }

  /** Snapshots a volume (copy-on-write, taken now); names are unique per volume. */
  async snapshot(ref: string, b: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }): Promise<Snapshot> {
    const { store, runtime } = this.ctx;
    const v = await store.volumes.mustFind(ref);
    if (v.status.phase === 'deleting') throw new ServiceError(409, 'deleting', `volume '${v.name}' is being deleted`);
    if ((await store.snapshots.list()).some((x) => x.spec.volume === v.id && x.name === b.name)) {
      throw new ServiceError(409, 'conflict', `volume '${v.name}' already has a snapshot named '${b.name}'`);
    }
    const snap = await store.snapshots.create({
      name: b.name,
      labels: b.labels,
      annotations: b.annotations,
      spec: { volume: v.id },
      status: { phase: 'pending', conditions: [] },
    });
    await runtime.reconcileNow('snapshot', snap.id);
    return (await store.snapshots.get(snap.id)) ?? snap;
  }

  /** Deletes a snapshot that has no clones. */
  async removeSnapshot(ref: string): Promise<Snapshot> {
    const { store, runtime } = this.ctx;
    const snap = await this.findSnapshot(ref);
    const clones = await this.clonesOf(snap.id);
    if (clones.length) throw new ServiceError(409, 'has_clones', `snapshot '${snap.name}' has clones: ${clones.join(', ')}; delete them first`);
    const updated = await this.ctx.status.requestDeletion(store.snapshots, snap.id);
    await runtime.reconcileNow('snapshot', snap.id);
    return (await store.snapshots.get(snap.id)) ?? updated;
  }

  /** Names of the clones of a snapshot, to refuse deletes that would orphan them. */
  private async clonesOf(snapshotId: string): Promise<string[]> {
    return (await this.ctx.store.volumes.list())
      .filter((v) => v.spec.source && 'snapshot' in v.spec.source && v.spec.source.snapshot === snapshotId)
      .map((v) => v.name);
  }
}
