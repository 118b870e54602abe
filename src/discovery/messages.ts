/**
 * Discovery messages (docs/discovery-and-trust.md is the specification).
 * On the wire a datagram is UTF-8 JSON `{ "v": 1, "body": "<JSON text>", "sig": "<base64>" }`, at
 * most MAX_DATAGRAM bytes. `sig` is an ECDSA P-256/SHA-256 signature (DER) over the UTF-8 bytes of
 * `body`, so no canonical JSON is needed. Bodies are validated against the schemas below.
 */
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { publicKeyFromB64, signBytes, verifyBytes } from '../pki/index.ts';

const PROTOCOL = 1;
export const MAX_DATAGRAM = 8192;
/**
 * Agents pad discover datagrams to at least this many bytes. A UDP answer is never larger than the
 * datagram it answers (a forged source address must not turn a controller into an amplifier), and
 * an ack needs about 1,600 bytes with a short endpoint URL; this leaves room for one of ~450 characters.
 */
export const DISCOVER_PAD_BYTES = 2048;
/** The longest DER ECDSA P-256 signature (72 bytes) in base64. */
const MAX_SIG_B64 = 96;
export const DEFAULT_GROUP = '239.255.74.41';
export const DEFAULT_PORT = 7441;
/** Messages older or newer than this (by their sentAt) are dropped. */
export const MAX_SKEW_MS = 5 * 60_000;

const B64 = Type.String({ pattern: '^[A-Za-z0-9+/]*={0,2}$', maxLength: 4096 });
const Id = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' });
const Label = Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 253 }));

/** What a host requires of the cluster it joins. Every item present must be supported. */
export const Policy = Type.Object(
  {
    cluster: Type.Optional(Type.String({ maxLength: 63 })),
    clusterLabels: Type.Optional(Label),
    minControllerVersion: Type.Optional(Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+$' })),
    features: Type.Optional(Type.Array(Type.String({ maxLength: 63 }), { maxItems: 32 })),
    dedicatedTo: Type.Optional(
      Type.Object(
        { tenant: Type.Optional(Type.String({ maxLength: 63 })), network: Type.Optional(Type.String({ maxLength: 63 })) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type Policy = Static<typeof Policy>;

export const Discover = Type.Object(
  {
    type: Type.Literal('discover'),
    hostId: Id,
    name: Type.String({ maxLength: 63 }),
    /** SPKI DER of the host's key; it signs this message and is the key of its future certificate. */
    publicKey: B64,
    /** Fresh per round: an acknowledgement must echo it, so old acks cannot be replayed. */
    challenge: B64,
    sentAt: Type.Integer(),
    policy: Policy,
    labels: Label,
  },
  { additionalProperties: false },
);
export type Discover = Static<typeof Discover>;

/** A controller as `outrig cluster info` shows it to operators; discovery never sends it to strangers. */
export const ControllerInfo = Type.Object(
  {
    id: Type.String({ maxLength: 64 }),
    name: Type.String({ maxLength: 253 }),
    version: Type.String({ maxLength: 32 }),
    /** Where to enroll and then connect: an https URL. */
    endpoint: Type.String({ maxLength: 512 }),
    cluster: Type.String({ maxLength: 63 }),
    features: Type.Array(Type.String({ maxLength: 63 }), { maxItems: 64 }),
    hosts: Type.Integer(),
  },
  { additionalProperties: false },
);
export type ControllerInfo = Static<typeof ControllerInfo>;

/** Only what an agent needs to verify the answer and enroll: a stranger learns no more than where to enroll. */
export const Ack = Type.Object(
  {
    type: Type.Literal('ack'),
    hostId: Id,
    challenge: B64,
    /** Binds the enrollment request (CSR) to this exchange and to the host's key. */
    nonce: B64,
    /** Where to enroll and then connect: an https URL. */
    endpoint: Type.String({ maxLength: 512 }),
    /** DER of the cluster CA certificate (the agent pins its SHA-256) and of the controller's discovery certificate (its key signs this message). */
    caCert: B64,
    nodeCert: B64,
    sentAt: Type.Integer(),
  },
  { additionalProperties: false },
);
export type Ack = Static<typeof Ack>;

export const Decline = Type.Object(
  {
    type: Type.Literal('decline'),
    hostId: Id,
    challenge: B64,
    nodeCert: B64,
    reasons: Type.Array(Type.String({ maxLength: 256 }), { maxItems: 64 }),
    sentAt: Type.Integer(),
  },
  { additionalProperties: false },
);
export type Decline = Static<typeof Decline>;

export type Body = Discover | Ack | Decline;

interface Envelope {
  v: number;
  body: string;
  sig: string;
}

/** The most bytes `seal(body)` can make (signatures vary by a few bytes); no signing needed. */
export function sealedSizeBound(body: Body): number {
  return Buffer.byteLength(JSON.stringify({ v: PROTOCOL, body: JSON.stringify(body), sig: 'A'.repeat(MAX_SIG_B64) }), 'utf8');
}

/** A datagram padded with spaces (JSON whitespace: receivers parse it unchanged) to at least `bytes`. */
export function padDatagram(datagram: Buffer, bytes: number): Buffer {
  return datagram.length >= bytes ? datagram : Buffer.concat([datagram, Buffer.alloc(bytes - datagram.length, 0x20)]);
}

export function seal(body: Body, privateKeyPem: string): Buffer {
  const text = JSON.stringify(body);
  const env: Envelope = { v: PROTOCOL, body: text, sig: signBytes(privateKeyPem, Buffer.from(text, 'utf8')).toString('base64') };
  const out = Buffer.from(JSON.stringify(env), 'utf8');
  if (out.length > MAX_DATAGRAM) throw new Error(`discovery message of ${out.length} bytes exceeds ${MAX_DATAGRAM}`);
  return out;
}

export type DropReason = 'oversized' | 'malformed' | 'version' | 'schema' | 'signature' | 'stale' | 'replayed' | 'unexpected' | 'rate-limited' | 'unpadded';

export class Dropped extends Error {
  constructor(
    readonly reason: DropReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** Compiled once: a flood of datagrams costs microseconds each to check, not hundreds. */
const checkDiscover = Compile(Discover);
const checkAck = Compile(Ack);
const checkDecline = Compile(Decline);

/** Parses an envelope and its body; the signature is checked by the caller, who knows the key. */
export function open(datagram: Buffer): { body: Body; bodyBytes: Buffer; sig: Buffer } {
  if (datagram.length > MAX_DATAGRAM) throw new Dropped('oversized', `${datagram.length} bytes`);
  let env: Envelope;
  try {
    env = JSON.parse(datagram.toString('utf8')) as Envelope;
  } catch {
    throw new Dropped('malformed', 'not JSON');
  }
  if (!env || typeof env !== 'object' || typeof env.body !== 'string' || typeof env.sig !== 'string') throw new Dropped('malformed', 'not an envelope');
  if (env.v !== PROTOCOL) throw new Dropped('version', `protocol ${String(env.v)}`);
  let body: unknown;
  try {
    body = JSON.parse(env.body);
  } catch {
    throw new Dropped('malformed', 'body is not JSON');
  }
  const type = (body as { type?: unknown })?.type;
  const schema = type === 'discover' ? checkDiscover : type === 'ack' ? checkAck : type === 'decline' ? checkDecline : undefined;
  if (!schema || !schema.Check(body)) throw new Dropped('schema', `invalid ${String(type)} message`);
  return { body: body as Body, bodyBytes: Buffer.from(env.body, 'utf8'), sig: Buffer.from(env.sig, 'base64') };
}

/** Opens a discover message and checks it is signed by the key it carries and is fresh. */
export function openDiscover(datagram: Buffer, now = Date.now()): Discover {
  const { body, bodyBytes, sig } = open(datagram);
  if (body.type !== 'discover') throw new Dropped('unexpected', body.type);
  let ok: boolean;
  try {
    ok = verifyBytes(publicKeyFromB64(body.publicKey), bodyBytes, sig);
  } catch {
    ok = false; // not a key at all
  }
  if (!ok) throw new Dropped('signature', `discover from ${body.hostId}`);
  if (Math.abs(now - body.sentAt) > MAX_SKEW_MS) throw new Dropped('stale', `sent at ${body.sentAt}`);
  return body;
}
