import { Type } from 'typebox';
import { Name } from '../../model/common.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { SnapshotResource, VolumeResource, type Snapshot, type Volume, type VolumeSource } from '../../model/volume.ts';
import { newVolumeNeed, pickSnapshot } from '../../controller/index.ts';
import { formatBytes } from '../../common/bytes.ts';
import { ApiError, fieldError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const MiB = 1024 * 1024;

const CreateVolume = Type.Object(
  {
    name: Name,
    sizeBytes: Type.Optional(Type.Integer({ minimum: MiB, maximum: 2 ** 48, description: 'virtual size; defaults to the source size for clones' })),
    tenant: Type.Optional(Type.String({ minLength: 1 })),
    blockSize: Type.Optional(Type.Integer({ minimum: 4096, maximum: 2 * MiB, description: 'allocation block size, a power of two (default 64 KiB)' })),
    source: Type.Optional(
      Type.Union([
        Type.Object({ snapshot: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
        Type.Object({ image: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
        Type.Object({ backup: Type.String({ minLength: 1, description: 'a BMR-ready backup: the disk is rebuilt into the new volume' }) }, { additionalProperties: false }),
      ]),
    ),
    host: Type.Optional(Type.String({ minLength: 1, description: 'host to create it on (default: chosen by the controller)' })),
    forInstance: Type.Optional(Type.String({ minLength: 1, description: 'instance (name or id) it is made for: it is created on that instance\'s host, so it can be attached there' })),
    waitForRoom: Type.Optional(
      Type.Boolean({ description: 'when the hosts it may go to have no disk room for it now, accept it and keep it pending until one has (default: refuse it with 422 insufficient_storage)' }),
    ),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

const SnapshotRefParams = Type.Object({ ref: Type.String({ description: 'snapshot id, VOLUME/SNAPSHOT, or a name only one volume has a snapshot of' }) });
const DeleteVolumeQuery = Type.Object(
  { recursive: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'delete its snapshots with it' })) },
  { additionalProperties: false },
);

const AttachBody = Type.Object({ instance: Type.String({ minLength: 1 }) }, { additionalProperties: false });
const ResizeBody = Type.Object({ sizeBytes: Type.Integer({ minimum: MiB, maximum: 2 ** 48 }) }, { additionalProperties: false });
const SnapshotBody = Type.Object({ name: Name, ...MetadataFields }, { additionalProperties: false });
const CloneBody = Type.Object(
  { name: Name, sizeBytes: Type.Optional(Type.Integer({ minimum: MiB, maximum: 2 ** 48 })), ...MetadataFields },
  { additionalProperties: false },
);

export function volumeRoutes(app: Api, s: ApiServices): void {
  /** The snapshot a reference means (see snapshot-refs.ts); `missing` is the status of a reference to nothing. */
  async function findSnapshot(ref: string, missing: { status: number; code: string } = { status: 404, code: 'not_found' }): Promise<Snapshot> {
    const pick = pickSnapshot(ref, await s.store.snapshots.list(), await s.store.volumes.list());
    if (pick.ok) return pick.snapshot;
    throw pick.status === 404 ? new ApiError(missing.status, missing.code, pick.message) : new ApiError(pick.status, pick.code, pick.message);
  }

  /** Validates a new volume and creates it; shared by POST /volumes and snapshot clone. */
  async function createVolume(b: {
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
  }): Promise<Volume> {
    const tenant = await s.store.tenants.find(b.tenant ?? DEFAULT_TENANT);
    if (!tenant) throw new ApiError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
    if (b.blockSize !== undefined && (b.blockSize & (b.blockSize - 1)) !== 0) throw fieldError('blockSize', 'must be a power of two');
    const host = b.host ? await s.store.hosts.find(b.host) : undefined;
    if (b.host && !host) throw new ApiError(422, 'unknown_host', `host '${b.host}' does not exist`);
    const forInstance = b.forInstance ? await s.store.instances.find(b.forInstance) : undefined;
    if (b.forInstance && !forInstance) throw new ApiError(422, 'unknown_instance', `instance '${b.forInstance}' does not exist`);
    if (forInstance && b.host) throw new ApiError(400, 'invalid_request', 'give host or forInstance, not both: a volume made for an instance goes to its host');
    if (forInstance && forInstance.spec.tenant !== tenant.name) throw new ApiError(422, 'tenant_mismatch', `instance ${forInstance.name} belongs to tenant ${forInstance.spec.tenant}, the volume would to ${tenant.name}`);
    /** The host the volume must go to, when known now: the one asked for, its instance's, or a clone's source volume's. */
    let target = host?.id ?? forInstance?.status.hostId;
    let source: VolumeSource | undefined;
    let minSize = MiB;
    if (b.source && 'snapshot' in b.source) {
      const snap = await findSnapshot(b.source.snapshot, { status: 422, code: 'unknown_snapshot' });
      if (snap.status.phase !== 'ready') throw new ApiError(409, 'snapshot_not_ready', `snapshot '${snap.name}' is ${snap.status.phase}`);
      const vol = await s.store.volumes.get(snap.spec.volume);
      if (vol && vol.spec.tenant !== tenant.name) throw new ApiError(422, 'tenant_mismatch', `snapshot '${snap.name}' belongs to tenant ${vol.spec.tenant}`);
      if (b.blockSize !== undefined) throw fieldError('blockSize', 'cannot be chosen for a clone: it uses its source block size');
      if (b.host || forInstance) throw new ApiError(400, 'invalid_request', "a clone lives on its source volume's host");
      minSize = snap.status.sizeBytes ?? vol?.spec.sizeBytes ?? MiB;
      source = { snapshot: snap.id };
      target = vol?.status.hostId;
    } else if (b.source && 'image' in b.source) {
      const img = await s.store.images.find(b.source.image);
      if (!img) throw new ApiError(422, 'unknown_image', `image '${b.source.image}' does not exist`);
      if (img.spec.kind !== 'disk') throw new ApiError(422, 'invalid_request', `image '${img.name}' is a ${img.spec.kind} image, not a disk image`);
      if (img.status.phase !== 'ready') throw new ApiError(409, 'image_not_ready', `image '${img.name}' is still ${img.status.phase}`);
      minSize = img.spec.virtualSizeBytes;
      source = { image: img.id };
    } else if (b.source && 'backup' in b.source) {
      const bk = await s.store.backups.find(b.source.backup);
      if (!bk) throw new ApiError(422, 'unknown_backup', `backup '${b.source.backup}' does not exist`);
      if (bk.status.phase !== 'completed' || !bk.status.result) throw new ApiError(409, 'backup_not_ready', `backup '${bk.name}' is ${bk.status.phase}`);
      if (!bk.status.result.bmrReady) throw new ApiError(422, 'not_bmr_ready', `backup '${bk.name}' is not BMR-ready: it cannot rebuild a disk`);
      const orig = bk.spec.volume ? await s.store.volumes.get(bk.spec.volume) : undefined;
      if (orig && orig.spec.tenant !== tenant.name) throw new ApiError(422, 'tenant_mismatch', `backup '${bk.name}' is of a volume of tenant ${orig.spec.tenant}`);
      minSize = bk.status.sizeBytes ?? MiB;
      source = { backup: bk.id };
    }
    const sizeBytes = b.sizeBytes ?? (source ? minSize : undefined);
    if (sizeBytes === undefined) throw fieldError('sizeBytes', 'is required for an empty volume');
    if (sizeBytes < minSize) throw fieldError('sizeBytes', `must be at least the source's size, ${formatBytes(minSize)} (${minSize} bytes)`, 422);
    // Disk space, decided now where it can be (placement decides again, and may keep it pending): a
    // host it must go to that cannot hold it now, or no host that ever could, is refused; so is one
    // no host has room for now, unless the caller waits for room.
    const need = newVolumeNeed(sizeBytes);
    const fit = target ? await s.controller.diskFit(target, need) : await s.controller.diskFitAnywhere(tenant.name, need);
    if (!fit.ok && (target || fit.never)) throw new ApiError(422, 'insufficient_storage', fit.message);
    if (!fit.ok && !b.waitForRoom) {
      throw new ApiError(422, 'insufficient_storage', `${fit.message}. Free some room, or create it with waitForRoom (outrig volume create --wait-for-room) to keep it pending until a host has room`);
    }
    const v = await s.store.volumes.create({
      name: b.name,
      labels: b.labels,
      annotations: b.annotations,
      spec: { sizeBytes, tenant: tenant.name, blockSize: b.blockSize, source, host: b.host, forInstance: forInstance?.id },
      status: { phase: 'pending', conditions: [], observedGeneration: 0 },
    });
    await s.controller.reconcileNow('volume', v.id);
    return (await s.store.volumes.get(v.id)) ?? v;
  }

  app.get('/volumes', { schema: { tags: ['volumes'], response: { 200: listOf(VolumeResource) } } }, async () => ({ items: await s.store.volumes.list() }));

  app.get('/volumes/:ref', { schema: { tags: ['volumes'], params: RefParams, response: { 200: VolumeResource, ...errors } } }, async (req) => s.store.volumes.mustFind(req.params.ref));

  app.post(
    '/volumes',
    { schema: { tags: ['volumes'], summary: 'Create a volume: empty, a clone of a snapshot, or a clone of a disk image', body: CreateVolume, response: { 201: VolumeResource, ...errors } } },
    async (req, reply) => reply.status(201).send(await createVolume(req.body)),
  );

  app.delete(
    '/volumes/:ref',
    { schema: { tags: ['volumes'], summary: 'Delete a volume (detached; its snapshots too with recursive=true)', params: RefParams, querystring: DeleteVolumeQuery, response: { 202: VolumeResource, ...errors } } },
    async (req, reply) => {
      const v = await s.store.volumes.mustFind(req.params.ref);
      if (v.spec.attachedTo) throw new ApiError(409, 'in_use', `volume '${v.name}' is attached; detach it first`);
      if (v.spec.ownedBy) throw new ApiError(409, 'in_use', `volume '${v.name}' is the boot disk of an instance and goes with it`);
      const bootOf = (await s.store.instances.list()).find((i) => i.spec.bootVolume === v.id);
      if (bootOf) throw new ApiError(409, 'in_use', `volume '${v.name}' is the boot volume of instance ${bootOf.name}`);
      const snaps = (await s.store.snapshots.list()).filter((x) => x.spec.volume === v.id);
      const recursive = req.query.recursive === 'true';
      if (snaps.length && !recursive) {
        throw new ApiError(409, 'has_snapshots', `volume '${v.name}' has snapshots: ${snaps.map((x) => x.name).join(', ')}; delete them first, or delete the volume with them (recursive: outrig volume delete ${v.name} --recursive)`);
      }
      // Clones of its snapshots are volumes of their own that need them: they go first, by hand.
      const clones = (await Promise.all(snaps.map(async (x) => (await s.controller.clonesOf(x.id)).map((c) => `${c} (of ${x.name})`)))).flat();
      if (clones.length) throw new ApiError(409, 'has_clones', `volume '${v.name}' has snapshots with clones: ${clones.join(', ')}; delete the clones first`);
      // The snapshots live in the volume's file and go with it; their rows are marked so nothing new starts from them.
      for (const x of snaps) await s.store.snapshots.update(x.id, (cur) => (cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } }));
      const updated = await s.store.volumes.update(v.id, (cur) => (cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } }));
      await s.controller.reconcileNow('volume', v.id);
      for (const x of snaps) s.controller.enqueue('snapshot', x.id);
      return reply.status(202).send((await s.store.volumes.get(v.id)) ?? updated);
    },
  );

  app.post(
    '/volumes/:ref/attach',
    { schema: { tags: ['volumes'], summary: 'Attach to an instance (hot-plugged if it runs)', params: RefParams, body: AttachBody, response: { 202: VolumeResource, ...errors } } },
    async (req, reply) => {
      const v = await s.store.volumes.mustFind(req.params.ref);
      const inst = await s.store.instances.mustFind(req.body.instance);
      if (v.spec.attachedTo === inst.id) return reply.status(202).send(v);
      if (v.spec.attachedTo || v.spec.ownedBy) throw new ApiError(409, 'in_use', `volume '${v.name}' is attached elsewhere`);
      if ((await s.store.instances.list()).some((i) => i.spec.bootVolume === v.id)) throw new ApiError(409, 'in_use', `volume '${v.name}' is a boot volume`);
      if (v.status.phase === 'deleting' || inst.status.phase === 'deleting') throw new ApiError(409, 'deleting', 'the volume or the instance is being deleted');
      if (v.spec.tenant !== inst.spec.tenant) throw new ApiError(422, 'tenant_mismatch', `volume '${v.name}' belongs to tenant ${v.spec.tenant}, instance ${inst.name} to ${inst.spec.tenant}`);
      if (v.status.hostId && inst.status.hostId && v.status.hostId !== inst.status.hostId) {
        const instHost = inst.status.hostName ?? inst.status.hostId;
        throw new ApiError(
          422,
          'volumes_apart',
          `volume '${v.name}' is on host ${v.status.hostName ?? v.status.hostId}, instance ${inst.name} on ${instHost}: a volume is attached on its own host; make one there (outrig volume create NAME --size SIZE --for ${inst.name}, or --host ${instHost})`,
        );
      }
      const attached = (await s.store.volumes.list()).filter((x) => x.spec.attachedTo === inst.id).length;
      if (attached >= 7) throw new ApiError(409, 'too_many_volumes', `instance ${inst.name} has ${attached} volumes attached, the most it can take`);
      await s.store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: inst.id } }));
      await s.controller.reconcileNow('volume', v.id);
      await s.controller.reconcileNow('instance', inst.id);
      return reply.status(202).send(await s.store.volumes.mustFind(v.id));
    },
  );

  app.post(
    '/volumes/:ref/detach',
    { schema: { tags: ['volumes'], summary: 'Detach from its instance (hot-unplugged if it runs)', params: RefParams, response: { 202: VolumeResource, ...errors } } },
    async (req, reply) => {
      const v = await s.store.volumes.mustFind(req.params.ref);
      if (v.spec.ownedBy) throw new ApiError(409, 'in_use', `volume '${v.name}' is the boot disk of an instance`);
      if (!v.spec.attachedTo) return reply.status(202).send(v);
      const instanceId = v.spec.attachedTo;
      await s.store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: undefined } }));
      await s.controller.reconcileNow('instance', instanceId);
      await s.controller.reconcileNow('volume', v.id);
      return reply.status(202).send(await s.store.volumes.mustFind(v.id));
    },
  );

  app.post(
    '/volumes/:ref/resize',
    { schema: { tags: ['volumes'], summary: 'Grow a volume', params: RefParams, body: ResizeBody, response: { 202: VolumeResource, ...errors } } },
    async (req, reply) => {
      const v = await s.store.volumes.mustFind(req.params.ref);
      if (req.body.sizeBytes < v.spec.sizeBytes) throw new ApiError(422, 'invalid_request', `volumes only grow (now ${v.spec.sizeBytes} bytes)`);
      // Growing promises its host more: checked with placement held off, so two resizes never both take the last room.
      await s.controller.exclusive(async () => {
        const cur = await s.store.volumes.mustFind(v.id);
        const growth = req.body.sizeBytes - cur.spec.sizeBytes;
        if (growth > 0 && cur.status.hostId) {
          const fit = await s.controller.diskFit(cur.status.hostId, { bytes: growth, what: `volume ${cur.name} grown by ${formatBytes(growth)} to ${formatBytes(req.body.sizeBytes)}` });
          if (!fit.ok) throw new ApiError(422, 'insufficient_storage', fit.message);
        }
        await s.store.volumes.update(v.id, (c) => ({ spec: { ...c.spec, sizeBytes: req.body.sizeBytes } }));
      });
      await s.controller.reconcileNow('volume', v.id);
      return reply.status(202).send(await s.store.volumes.mustFind(v.id));
    },
  );

  app.post(
    '/volumes/:ref/snapshots',
    { schema: { tags: ['volumes'], summary: 'Snapshot a volume (copy-on-write, taken now)', params: RefParams, body: SnapshotBody, response: { 201: SnapshotResource, ...errors } } },
    async (req, reply) => {
      const v = await s.store.volumes.mustFind(req.params.ref);
      if (v.status.phase === 'deleting') throw new ApiError(409, 'deleting', `volume '${v.name}' is being deleted`);
      if ((await s.store.snapshots.list()).some((x) => x.spec.volume === v.id && x.name === req.body.name)) {
        throw new ApiError(409, 'conflict', `volume '${v.name}' already has a snapshot named '${req.body.name}'`);
      }
      const snap = await s.store.snapshots.create({
        name: req.body.name,
        labels: req.body.labels,
        annotations: req.body.annotations,
        spec: { volume: v.id },
        status: { phase: 'pending', conditions: [] },
      });
      await s.controller.reconcileNow('snapshot', snap.id);
      return reply.status(201).send((await s.store.snapshots.get(snap.id)) ?? snap);
    },
  );

  app.get('/snapshots', { schema: { tags: ['volumes'], response: { 200: listOf(SnapshotResource) } } }, async () => ({ items: await s.store.snapshots.list() }));

  app.get('/snapshots/:ref', { schema: { tags: ['volumes'], params: SnapshotRefParams, response: { 200: SnapshotResource, ...errors } } }, async (req) => findSnapshot(req.params.ref));

  app.delete(
    '/snapshots/:ref',
    { schema: { tags: ['volumes'], summary: 'Delete a snapshot (without clones)', params: SnapshotRefParams, response: { 202: SnapshotResource, ...errors } } },
    async (req, reply) => {
      const snap = await findSnapshot(req.params.ref);
      const clones = await s.controller.clonesOf(snap.id);
      if (clones.length) throw new ApiError(409, 'has_clones', `snapshot '${snap.name}' has clones: ${clones.join(', ')}; delete them first`);
      const updated = await s.store.snapshots.update(snap.id, (cur) => (cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } }));
      await s.controller.reconcileNow('snapshot', snap.id);
      return reply.status(202).send((await s.store.snapshots.get(snap.id)) ?? updated);
    },
  );

  app.post(
    '/snapshots/:ref/clone',
    { schema: { tags: ['volumes'], summary: 'Make a writable volume from a snapshot; space is shared until written', params: SnapshotRefParams, body: CloneBody, response: { 201: VolumeResource, ...errors } } },
    async (req, reply) => {
      const snap = await findSnapshot(req.params.ref);
      const vol = await s.store.volumes.get(snap.spec.volume);
      return reply.status(201).send(await createVolume({ ...req.body, tenant: vol?.spec.tenant, source: { snapshot: snap.id } }));
    },
  );
}
