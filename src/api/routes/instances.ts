import { Type } from 'typebox';
import { everFits, newVolumeNeed, TooManyConsolesError } from '../../controller/index.ts';
import { Name } from '../../model/common.ts';
import { InstanceResource, type Instance } from '../../model/instance.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import type { InstanceNic, Network } from '../../model/network.ts';
import { formatIpv4, macForAddress, parseIpv4, pickAddress } from '../../network/index.ts';
import { subnetOf } from './networks.ts';
import { ApiError, fieldError } from '../errors.ts';
import { formatBytes } from '../../common/bytes.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

export const CreateInstance = Type.Object(
  {
    name: Name,
    image: Type.Optional(Type.String({ minLength: 1, description: 'image name or id: a kernel image, or a disk image the instance boots from a clone of' })),
    bootVolume: Type.Optional(Type.String({ minLength: 1, description: 'volume (name or id) to boot from, instead of an image' })),
    volumes: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 7, uniqueItems: true, description: 'volumes (names or ids) to attach' })),
    rootDiskBytes: Type.Optional(Type.Integer({ minimum: 1, description: "size of the boot volume made from a disk image (default: the image's size)" })),
    kernelArgs: Type.Optional(Type.String({ maxLength: 1024, pattern: '^[^\\n\\r]*$', description: 'extra kernel command line (kernel images)' })),
    readyMarker: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\n\\r]*$', description: "text the guest prints on its serial console when it is up (default: the image's)" })),
    vcpus: Type.Integer({ minimum: 1, maximum: 512 }),
    memoryMiB: Type.Integer({ minimum: 64, maximum: 16 * 1024 * 1024 }),
    tenant: Type.Optional(Type.String({ minLength: 1, description: `tenant name or id (default: ${DEFAULT_TENANT})` })),
    ...MetadataFields,
    forwardPorts: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { maxItems: 16, uniqueItems: true, description: "guest TCP ports to forward to the host (default: the image's)" }),
    ),
    networks: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 8, uniqueItems: true, description: 'networks (names or ids) to put a NIC on, in order; each NIC gets an address of its network' })),
    start: Type.Optional(Type.Boolean({ description: 'start the instance once placed (default true)' })),
    waitForRoom: Type.Optional(
      Type.Boolean({ description: 'when the hosts that may take it have no room for it now, accept it and keep it pending until one has (default: refuse it with 422 no_room)' }),
    ),
  },
  { additionalProperties: false },
);

const DeleteInstanceQuery = Type.Object(
  { force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'delete it even while its VM runs' })) },
  { additionalProperties: false },
);

/** Phases in which an instance's VM runs (or boots): deleting it then kills a live machine, so it takes force. */
const RUNNING_PHASES = new Set(['starting', 'running']);

/** Labels a response body as a guest's own bytes: nothing Outrig wrote, nothing to trust or render raw. */
export const UNTRUSTED_HEADER = 'x-outrig-untrusted-output';
export const UNTRUSTED_VALUE = 'guest-serial-console';

/** A console request without `tail` starts this far back: recent output, not everything the guest kept. */
export const DEFAULT_CONSOLE_TAIL = 256 * 1024;

const ForceQuery = Type.Object(
  { force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'power the VM off at once instead of pressing its power button and waiting for the guest' })) },
  { additionalProperties: false },
);

const ConsoleQuery = Type.Object(
  {
    follow: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
    tail: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: `start this many bytes before the end (default ${DEFAULT_CONSOLE_TAIL}; the log holds at most two rotated files of the agent's --serial-log-max)` })),
  },
  { additionalProperties: false },
);

/** An address on each network, claimed under the controller's lock so a network being deleted cannot get one. */
async function claimNics(s: ApiServices, instanceId: string, nets: Network[]): Promise<InstanceNic[]> {
  return s.controller.exclusive(async () => {
    const nics: InstanceNic[] = [];
    try {
      for (const n of nets) {
        const fresh = await s.store.networks.get(n.id);
        if (!fresh || fresh.status.phase !== 'active') throw new ApiError(409, 'network_deleting', `network '${n.name}' is being deleted`);
        const subnet = subnetOf(fresh);
        const reserved = new Set(fresh.spec.gateway ? [parseIpv4(fresh.spec.gateway)!] : []);
        const addr = await s.store.claims.claimAddress(n.id, instanceId, (used) => pickAddress(subnet, reserved, used));
        if (addr === undefined) throw new ApiError(409, 'network_full', `network '${n.name}' (${fresh.spec.subnet}) has no free address`);
        nics.push({ network: n.id, networkName: n.name, address: formatIpv4(addr), prefix: subnet.prefix, gateway: fresh.spec.gateway, mac: macForAddress(addr) });
      }
      return nics;
    } catch (e) {
      await s.store.claims.releaseInstance(instanceId);
      throw e;
    }
  });
}

/** An instance refused because the hosts that may take it have no room now. */
function noRoom(name: string, why: string): ApiError {
  return new ApiError(422, 'no_room', `no host has room for instance ${name} now: ${why}. Free some room, or create it with waitForRoom (outrig instance create --wait-for-room) to keep it pending until a host has room`);
}

export function instanceRoutes(app: Api, s: ApiServices): void {
  app.get('/instances', { schema: { tags: ['instances'], response: { 200: listOf(InstanceResource) } } }, async () => ({
    items: await s.store.instances.list(),
  }));

  app.get('/instances/:ref', { schema: { tags: ['instances'], params: RefParams, response: { 200: InstanceResource, ...errors } } }, async (req) =>
    s.store.instances.mustFind(req.params.ref),
  );

  app.post(
    '/instances',
    { schema: { tags: ['instances'], summary: 'Create an instance', body: CreateInstance, response: { 201: InstanceResource, ...errors } } },
    async (req, reply) => {
      const b = req.body;
      if (!b.image === !b.bootVolume) throw new ApiError(400, 'invalid_request', 'give exactly one of image and bootVolume');
      const tenant = await s.store.tenants.find(b.tenant ?? DEFAULT_TENANT);
      if (!tenant) throw new ApiError(422, 'unknown_tenant', `tenant '${b.tenant}' does not exist`);
      const limits = (tenant.spec.memory ?? []).map((e) => e.limitMiB);
      if (limits.length && b.memoryMiB > Math.max(...limits)) {
        throw new ApiError(422, 'over_tenant_limit', `${b.memoryMiB} MiB is more than tenant ${tenant.name}'s memory limit (at most ${Math.max(...limits)} MiB in any of its pools)`);
      }
      const image = b.image ? await s.store.images.find(b.image) : undefined;
      if (b.image && !image) throw new ApiError(422, 'unknown_image', `image '${b.image}' does not exist (see: outrig image list)`);
      if (image && image.status.phase !== 'ready') throw new ApiError(409, 'image_not_ready', `image '${image.name}' is still ${image.status.phase}`);
      if (b.kernelArgs && image?.spec.kind !== 'kernel') throw new ApiError(422, 'invalid_request', 'kernelArgs only apply to kernel images');
      const capacity = await s.controller.capacity();
      const fit = everFits(
        { vcpus: b.vcpus, memoryMiB: b.memoryMiB },
        capacity.map((c) => ({ name: c.name, allocatable: c.allocatable })),
      );
      if (!fit.ok) throw new ApiError(422, 'insufficient_capacity', fit.message);
      const usable = async (ref: string) => {
        const v = await s.store.volumes.find(ref);
        if (!v) throw new ApiError(422, 'unknown_volume', `volume '${ref}' does not exist`);
        if (v.spec.tenant !== tenant.name) throw new ApiError(422, 'tenant_mismatch', `volume '${v.name}' belongs to tenant ${v.spec.tenant}`);
        if (v.spec.attachedTo || v.spec.ownedBy || v.status.phase === 'deleting') throw new ApiError(409, 'volume_in_use', `volume '${v.name}' is in use or being deleted`);
        if ((await s.store.instances.list()).some((i) => i.spec.bootVolume === v.id)) throw new ApiError(409, 'volume_in_use', `volume '${v.name}' is another instance's boot volume`);
        return v;
      };
      const boot = b.bootVolume ? await usable(b.bootVolume) : undefined;
      const extra = [];
      for (const ref of b.volumes ?? []) extra.push(await usable(ref));
      if (boot && extra.some((v) => v.id === boot.id)) throw new ApiError(422, 'invalid_request', 'the boot volume is attached already');
      const hosts = new Set([boot, ...extra].map((v) => v?.status.hostId).filter(Boolean));
      if (hosts.size > 1) throw new ApiError(422, 'volumes_apart', 'the volumes are on different hosts; an instance can only use volumes of its own host');
      let rootBytes = 0;
      if (image?.spec.kind === 'disk') {
        rootBytes = b.rootDiskBytes ?? image.spec.virtualSizeBytes;
        if (rootBytes < image.spec.virtualSizeBytes) throw fieldError('rootDiskBytes', `must be at least the image's size, ${formatBytes(image.spec.virtualSizeBytes)} (${image.spec.virtualSizeBytes} bytes)`, 422);
        if (await s.store.volumes.find(`${b.name}-root`)) throw new ApiError(409, 'conflict', `volume '${b.name}-root' (for the boot disk) already exists`);
      }
      // Its volumes not placed yet go where it goes: some host must be able to hold them.
      const diskBytes = [rootBytes, ...[boot, ...extra].filter((v) => v && !v.status.hostId).map((v) => v!.spec.sizeBytes)].filter((n) => n > 0).reduce((n, size) => n + newVolumeNeed(size).bytes, 0);
      const diskFit = everFits({ vcpus: b.vcpus, memoryMiB: b.memoryMiB, diskBytes }, capacity.map((c) => ({ name: c.name, allocatable: c.allocatable, disk: c.disk })));
      if (!diskFit.ok) throw new ApiError(422, 'insufficient_storage', diskFit.message);
      const nets = [];
      for (const ref of b.networks ?? []) {
        const n = await s.store.networks.find(ref);
        if (!n) throw new ApiError(422, 'unknown_network', `network '${ref}' does not exist (see: outrig network list)`);
        if (n.spec.tenant !== tenant.name) throw new ApiError(422, 'tenant_mismatch', `network '${n.name}' belongs to tenant ${n.spec.tenant}`);
        nets.push(n);
      }
      if (new Set(nets.map((n) => n.id)).size !== nets.length) throw new ApiError(400, 'invalid_request', 'body/networks: a network is named twice');
      if (await s.store.instances.find(b.name)) throw new ApiError(409, 'conflict', `Instance '${b.name}' already exists`);
      const id = s.store.instances.newId();
      if (!b.waitForRoom) {
        const volumes = [...(rootBytes ? [{ sizeBytes: rootBytes }] : []), ...[boot, ...extra].filter((v) => !!v).map((v) => ({ sizeBytes: v.spec.sizeBytes, hostId: v.status.hostId }))];
        const draft = { id, spec: { vcpus: b.vcpus, memoryMiB: b.memoryMiB, tenant: tenant.name, powerState: 'stopped' as const, forwardPorts: [], restartSeq: 0 } };
        const verdict = await s.controller.placementFor(draft, volumes);
        if (verdict.kind === 'no-room') throw noRoom(b.name, verdict.message);
      }
      const nics = nets.length ? await claimNics(s, id, nets) : undefined;
      let inst: Instance;
      try {
        inst = await s.store.instances.create({
        id,
        name: b.name,
        labels: b.labels,
        annotations: b.annotations,
        spec: {
          image: image?.name,
          bootVolume: boot?.id,
          kernelArgs: b.kernelArgs,
          readyMarker: b.readyMarker,
          vcpus: b.vcpus,
          memoryMiB: b.memoryMiB,
          tenant: tenant.name,
          powerState: b.start === false ? 'stopped' : 'running',
          forwardPorts: b.forwardPorts ?? image?.spec.guestPorts ?? [],
          nics,
          restartSeq: 0,
        },
        status: { phase: 'pending', conditions: [], network: { forwards: [] }, observedGeneration: 0 },
      });
      } catch (e) {
        await s.store.claims.releaseInstance(id);
        throw e;
      }
      // Everything below belongs to this create: undo it all if any step fails.
      const made: string[] = [];
      try {
        if (image?.spec.kind === 'disk') {
          const root = await s.store.volumes.create({
            name: `${b.name}-root`,
            spec: { sizeBytes: rootBytes, tenant: tenant.name, source: { image: image.id }, ownedBy: inst.id },
            status: { phase: 'pending', conditions: [], observedGeneration: 0 },
          });
          made.push(root.id);
          await s.store.instances.update(inst.id, (cur) => ({ spec: { ...cur.spec, bootVolume: root.id } }));
        }
        for (const v of extra) await s.store.volumes.update(v.id, (cur) => ({ spec: { ...cur.spec, attachedTo: inst.id } }));
      } catch (e) {
        for (const v of extra) await s.store.volumes.update(v.id, (cur) => (cur.spec.attachedTo === inst.id ? { spec: { ...cur.spec, attachedTo: undefined } } : null)).catch(() => undefined);
        for (const id of made) await s.store.volumes.delete(id);
        await s.store.instances.delete(inst.id);
        await s.store.claims.releaseInstance(inst.id);
        throw e;
      }
      for (const id of made) s.controller.enqueue('volume', id);
      await s.controller.reconcileNow('instance', inst.id);
      const placed = await s.store.instances.get(inst.id);
      const scheduled = placed?.status.conditions.find((c) => c.type === 'Scheduled');
      if (!b.waitForRoom && placed && !placed.status.hostId && scheduled?.reason === 'NoRoom') {
        // The room it was checked for went to another instance meanwhile: deleted the usual way
        // (its volumes and addresses with it), unless it has been placed since after all.
        let undo = false;
        await s.store.instances.update(inst.id, (cur) => {
          undo = !cur.status.hostId && cur.status.phase !== 'deleting';
          return undo ? { status: { ...cur.status, phase: 'deleting' } } : null;
        });
        if (undo) {
          await s.controller.reconcileNow('instance', inst.id);
          throw noRoom(b.name, scheduled.message);
        }
      }
      return reply.status(201).send((await s.store.instances.get(inst.id)) ?? inst);
    },
  );

  const action = (name: 'start' | 'stop' | 'restart', summary: string, change: (i: Instance, force: boolean) => Instance['spec']) =>
    app.post(
      `/instances/:ref/${name}`,
      {
        schema: {
          tags: ['instances'],
          summary,
          params: RefParams,
          ...(name === 'start' ? {} : { querystring: ForceQuery }),
          response: { 202: InstanceResource, ...errors },
        },
      },
      async (req, reply) => {
        const inst = await s.store.instances.mustFind(req.params.ref);
        if (inst.status.phase === 'deleting') throw new ApiError(409, 'deleting', `instance ${inst.name} is being deleted`);
        const force = (req.query as { force?: string } | undefined)?.force === 'true';
        await s.store.instances.update(inst.id, (cur) => ({ spec: change(cur, force), newGeneration: true }));
        await s.controller.reconcileNow('instance', inst.id);
        return reply.status(202).send(await s.store.instances.mustFind(inst.id));
      },
    );
  // forceOff says how the stop or restart asked for now is done; a start clears it.
  action('start', 'Start the instance', (i) => ({ ...i.spec, powerState: 'running', forceOff: undefined }));
  action('stop', 'Stop the instance: ACPI power button, then forced after a timeout; force=true powers it off at once', (i, force) => ({
    ...i.spec,
    powerState: 'stopped',
    forceOff: force || undefined,
  }));
  action('restart', 'Restart the instance (graceful stop, then start); force=true powers it off at once, then starts it', (i, force) =>
    i.spec.powerState === 'running' ? { ...i.spec, restartSeq: i.spec.restartSeq + 1, forceOff: force || undefined } : { ...i.spec, powerState: 'running', forceOff: undefined },
  );

  app.delete(
    '/instances/:ref',
    {
      schema: {
        tags: ['instances'],
        summary: 'Delete the instance and every file of its VM; a running one only with force=true (its VM is killed)',
        params: RefParams,
        querystring: DeleteInstanceQuery,
        response: { 202: InstanceResource, ...errors },
      },
    },
    async (req, reply) => {
      const inst = await s.store.instances.mustFind(req.params.ref);
      if (RUNNING_PHASES.has(inst.status.phase) && req.query.force !== 'true') {
        throw new ApiError(409, 'running', `instance ${inst.name} is ${inst.status.phase}: stop it first (outrig instance stop ${inst.name}), or delete it running with --force (force=true)`);
      }
      const updated = await s.store.instances.update(inst.id, (cur) =>
        cur.status.phase === 'deleting' ? null : { status: { ...cur.status, phase: 'deleting' } },
      );
      await s.controller.reconcileNow('instance', inst.id);
      return reply.status(202).send((await s.store.instances.get(inst.id)) ?? updated);
    },
  );

  app.get(
    '/instances/:ref/console',
    {
      schema: {
        tags: ['instances'],
        summary: 'The serial console log as text; follow=true keeps streaming as the guest writes',
        description:
          `Untrusted guest output: the bytes the guest wrote to its serial port, unfiltered, possibly with terminal control sequences ` +
          `(OSC, CSI, C1) and not necessarily UTF-8. The response says so in the header \`${UNTRUSTED_HEADER}: ${UNTRUSTED_VALUE}\`; ` +
          `a client that shows it on a terminal must escape control characters (the outrig CLI does unless --raw). ` +
          `Without tail it starts ${DEFAULT_CONSOLE_TAIL} bytes before the end. The stream goes as fast as the client reads.`,
        params: RefParams,
        querystring: ConsoleQuery,
      },
    },
    async (req, reply) => {
      const inst = await s.store.instances.mustFind(req.params.ref);
      const hostId = inst.status.hostId;
      if (!hostId) throw new ApiError(409, 'not_placed', `instance ${inst.name} is not placed on a host yet`);
      if (!s.hub.isConnected(hostId)) throw new ApiError(503, 'host_unreachable', `the agent of host ${inst.status.hostName ?? hostId} is not connected`);
      let stream;
      try {
        stream = s.hub.openConsole(hostId, inst.id, { follow: req.query.follow === 'true', tailBytes: req.query.tail === undefined ? DEFAULT_CONSOLE_TAIL : Number(req.query.tail) });
      } catch (e) {
        if (e instanceof TooManyConsolesError) throw new ApiError(429, 'too_many_consoles', e.message);
        throw e;
      }
      req.raw.on('close', () => stream.destroy());
      reply.header('content-type', 'text/plain; charset=utf-8');
      reply.header('cache-control', 'no-store');
      reply.header('x-content-type-options', 'nosniff');
      reply.header(UNTRUSTED_HEADER, UNTRUSTED_VALUE);
      return reply.send(stream);
    },
  );
}
