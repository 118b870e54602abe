import { Type } from 'typebox';
import { TooManyConsolesError, type PowerAction } from '../../controller/index.ts';
import { Name } from '../../model/common.ts';
import { InstanceResource } from '../../model/instance.ts';
import { DEFAULT_TENANT } from '../../model/tenant.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const CreateInstance = Type.Object(
  {
    name: Name,
    image: Type.Optional(Type.String({ minLength: 1, description: 'image name or id: a kernel image, or a disk image the instance boots from a clone of' })),
    bootVolume: Type.Optional(Type.String({ minLength: 1, description: 'volume (name or id) to boot from, instead of an image' })),
    volumes: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 7, uniqueItems: true, description: 'volumes (names or ids) to attach' })),
    rootDiskBytes: Type.Optional(Type.Integer({ minimum: 1, description: "size of the boot volume made from a disk image (default: the image's size)" })),
    kernelArgs: Type.Optional(Type.String({ maxLength: 1024, pattern: '^[^\\n\\r]*$', description: 'extra kernel command line (kernel images)' })),
    readyMarker: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        pattern: '^[^\\n\\r]*$',
        description: "text the guest prints on its serial console when it is up (default: the image's)",
      }),
    ),
    vcpus: Type.Integer({ minimum: 1, maximum: 512 }),
    memoryMiB: Type.Integer({ minimum: 64, maximum: 16 * 1024 * 1024 }),
    tenant: Type.Optional(Type.String({ minLength: 1, description: `tenant name or id (default: ${DEFAULT_TENANT})` })),
    ...MetadataFields,
    forwardPorts: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), {
        maxItems: 16,
        uniqueItems: true,
        description: "guest TCP ports to forward to the host (default: the image's)",
      }),
    ),
    networks: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        maxItems: 8,
        uniqueItems: true,
        description: 'networks (names or ids) to put a NIC on, in order; each NIC gets an address of its network',
      }),
    ),
    start: Type.Optional(Type.Boolean({ description: 'start the instance once placed (default true)' })),
    waitForRoom: Type.Optional(
      Type.Boolean({
        description:
          'when the hosts that may take it have no room for it now, accept it and keep it pending until one has (default: refuse it with 422 no_room)',
      }),
    ),
  },
  { additionalProperties: false },
);

const DeleteInstanceQuery = Type.Object(
  { force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'delete it even while its VM runs' })) },
  { additionalProperties: false },
);

/** Labels a response body as a guest's own bytes: nothing Outrig wrote, nothing to trust or render raw. */
const UNTRUSTED_HEADER = 'x-outrig-untrusted-output';
const UNTRUSTED_VALUE = 'guest-serial-console';

/** A console request without `tail` starts this far back: recent output, not everything the guest kept. */
const DEFAULT_CONSOLE_TAIL = 256 * 1024;

const ForceQuery = Type.Object(
  {
    force: Type.Optional(
      Type.Union([Type.Literal('true'), Type.Literal('false')], {
        description: 'power the VM off at once instead of pressing its power button and waiting for the guest',
      }),
    ),
  },
  { additionalProperties: false },
);

const ConsoleQuery = Type.Object(
  {
    follow: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
    tail: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,15}$',
        description: `start this many bytes before the end (default ${DEFAULT_CONSOLE_TAIL}; the log holds at most two rotated files of the agent's --serial-log-max)`,
      }),
    ),
  },
  { additionalProperties: false },
);

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
    async (req, reply) => reply.status(201).send(await s.controller.instances.create(req.body)),
  );

  const action = (name: PowerAction, summary: string) =>
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
        const force = (req.query as { force?: string } | undefined)?.force === 'true';
        return reply.status(202).send(await s.controller.instances.power(req.params.ref, name, force));
      },
    );
  action('start', 'Start the instance');
  action('stop', 'Stop the instance: ACPI power button, then forced after a timeout; force=true powers it off at once');
  action('restart', 'Restart the instance (graceful stop, then start); force=true powers it off at once, then starts it');

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
    async (req, reply) => reply.status(202).send(await s.controller.instances.remove(req.params.ref, req.query.force === 'true')),
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
        stream = s.hub.openConsole(hostId, inst.id, {
          follow: req.query.follow === 'true',
          tailBytes: req.query.tail === undefined ? DEFAULT_CONSOLE_TAIL : Number(req.query.tail),
        });
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
