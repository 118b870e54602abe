import { Type } from 'typebox';
import { ControllerInfo } from '../../discovery/index.ts';
import { Name } from '../../model/common.ts';
import { HostResource } from '../../model/host.ts';
import { ENROLL_RULE_KINDS, EnrollmentRuleResource } from '../../model/trust.ts';
import { ApiError, ErrorBody, guarded } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, RefParams } from '../schemas.ts';

const EnrollBody = Type.Object(
  {
    hostId: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
    name: Type.Optional(Name),
    nonce: Type.Optional(Type.String({ maxLength: 64 })),
    csr: Type.String({ maxLength: 8192 }),
    bootstrapToken: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);

const EnrollReply = Type.Object({
  status: Type.Enum(['trusted', 'pending-approval'] as const),
  certificate: Type.Optional(Type.String()),
  ca: Type.Optional(Type.String()),
});

const RuleBody = Type.Object(
  {
    name: Name,
    kind: Type.Enum(ENROLL_RULE_KINDS),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    hostIds: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }), { maxItems: 10_000 })),
    labels: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 63 }), Type.String({ maxLength: 253 }))),
    keyFingerprints: Type.Optional(
      Type.Array(Type.String({ maxLength: 128, description: "SHA-256 of the host key's SubjectPublicKeyInfo, hex ('outrig agent --print-identity')" }), {
        maxItems: 10_000,
      }),
    ),
    withToken: Type.Optional(Type.Boolean({ description: 'host-ids and labels rules: also require a bootstrap token, returned once' })),
    allowUnauthenticated: Type.Optional(Type.Boolean({ description: 'admit on claimed host ids or labels alone, which anyone on the network can claim' })),
    expiresAt: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);

/** The raw bytes of an octet-stream body (a stream here), at most `limit` of them. */
async function readLimited(body: unknown, limit: number): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body.subarray(0, limit);
  if (!body || typeof (body as AsyncIterable<Buffer>)[Symbol.asyncIterator] !== 'function') return Buffer.from(JSON.stringify(body ?? null));
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    chunks.push(c);
    n += c.length;
    if (n >= limit) break;
  }
  return Buffer.concat(chunks).subarray(0, limit);
}

export function trustRoutes(app: Api, s: ApiServices): void {
  // Discovery over HTTPS: the same signed datagram as over UDP, for hosts pointed at a controller.
  app.post(
    '/discover',
    {
      bodyLimit: 8192,
      schema: {
        tags: ['trust'],
        summary: 'Discovery over HTTPS: a signed discover message (application/octet-stream) in, a signed ack (or decline) out; 204 when silent',
      },
    },
    async (req, reply) => {
      const raw = await readLimited(req.body, 8193);
      const answer = await s.responder.answer(raw, req.ip);
      if (!answer) return reply.status(204).send();
      reply.header('content-type', 'application/json');
      return reply.send(answer);
    },
  );

  app.post(
    '/enroll',
    {
      schema: {
        tags: ['trust'],
        summary: 'Ask for a host certificate with a CSR bound to a discovery nonce (429 while too many hosts wait for approval)',
        body: EnrollBody,
        response: { 201: EnrollReply, 202: EnrollReply, ...errors, 429: ErrorBody },
      },
    },
    async (req, reply) => {
      const r = await guarded(() => s.trust.enroll(req.body)).catch((e: unknown) => {
        s.metrics.enrollments.inc({ result: 'refused' });
        if (e instanceof ApiError && e.statusCode === 429) reply.header('retry-after', '30');
        throw e;
      });
      s.metrics.enrollments.inc({ result: r.status });
      if (r.status === 'trusted') await s.controller.reconcileNow('host', req.body.hostId);
      return reply.status(r.status === 'trusted' ? 201 : 202).send(r);
    },
  );

  app.post(
    '/agent/renew',
    {
      schema: {
        tags: ['trust'],
        summary: 'A host renews its certificate (with its current certificate)',
        body: Type.Object({ csr: Type.String({ maxLength: 8192 }) }, { additionalProperties: false }),
        response: { 200: EnrollReply, ...errors },
      },
    },
    async (req) => {
      if (req.peer?.kind !== 'host') throw new ApiError(403, 'forbidden', 'only a host renews its own certificate');
      const hostId = req.peer.hostId;
      return { status: 'trusted' as const, ...(await guarded(() => s.trust.renew(hostId, req.body.csr))) };
    },
  );

  for (const action of ['approve', 'reject', 'revoke'] as const) {
    app.post(
      `/hosts/:ref/${action}`,
      {
        schema: {
          tags: ['hosts'],
          summary: {
            approve: 'Admit a host waiting for approval',
            reject: 'Turn a waiting host away',
            revoke: "Revoke a host's certificates; it is cut off at once",
          }[action],
          params: RefParams,
          response: { 200: HostResource, ...errors },
        },
      },
      async (req) => {
        const by = req.peer?.kind === 'operator' ? `operator ${req.peer.name}` : 'admin';
        const h = await guarded(() =>
          action === 'approve' ? s.trust.approve(req.params.ref, by) : action === 'reject' ? s.trust.reject(req.params.ref) : s.trust.revoke(req.params.ref),
        );
        if (action === 'revoke') s.hub.disconnect(h.id, 'certificate revoked');
        await s.controller.reconcileNow('host', h.id);
        return (await s.store.hosts.get(h.id)) ?? h;
      },
    );
  }

  app.get(
    '/cluster',
    {
      schema: {
        tags: ['trust'],
        summary: 'This controller and the cluster CA (its fingerprint is what agents pin with --ca-fingerprint)',
        response: { 200: Type.Intersect([ControllerInfo, Type.Object({ caFingerprint: Type.String(), caCertificate: Type.String() })]) },
      },
    },
    async () => ({ ...(await s.info()), caFingerprint: s.trust.ca.fingerprint, caCertificate: s.trust.ca.certPem }),
  );

  app.get('/enrollment-rules', { schema: { tags: ['trust'], response: { 200: listOf(EnrollmentRuleResource) } } }, async () => ({
    items: await s.store.enrollmentRules.list(),
  }));

  app.get('/enrollment-rules/:ref', { schema: { tags: ['trust'], params: RefParams, response: { 200: EnrollmentRuleResource, ...errors } } }, async (req) =>
    s.store.enrollmentRules.mustFind(req.params.ref),
  );

  app.post(
    '/enrollment-rules',
    {
      schema: {
        tags: ['trust'],
        summary:
          'Add a rule that admits enrolling hosts. It must bind to a bootstrap token (kind token, or withToken; returned once) or key fingerprints (kind keys, or keyFingerprints), unless allowUnauthenticated admits on claims alone',
        body: RuleBody,
        response: { 201: Type.Object({ rule: EnrollmentRuleResource, token: Type.Optional(Type.String()) }), ...errors },
      },
    },
    async (req, reply) => {
      const { name, ...input } = req.body;
      const { rule, token } = await guarded(() => s.trust.addRule(name, input));
      return reply.status(201).send({ rule, token });
    },
  );

  app.delete('/enrollment-rules/:ref', { schema: { tags: ['trust'], params: RefParams, response: { 204: Type.Null(), ...errors } } }, async (req, reply) => {
    await s.trust.removeRule(req.params.ref);
    return reply.status(204).send(null);
  });

  app.post(
    '/operator-certificates',
    {
      schema: {
        tags: ['trust'],
        summary: 'Issue an operator client certificate for a public key (PEM)',
        body: Type.Object({ name: Name, publicKey: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }),
        response: { 201: Type.Object({ certificate: Type.String(), ca: Type.String() }), ...errors },
      },
    },
    async (req, reply) => {
      const cert = await s.trust.certs.issueOperator(req.body.name, req.body.publicKey).catch((e: Error) => {
        throw new ApiError(400, 'invalid_request', `cannot issue: ${e.message}`);
      });
      return reply.status(201).send({ certificate: cert.pem, ca: s.trust.ca.certPem });
    },
  );
}
