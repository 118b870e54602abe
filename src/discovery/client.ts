/**
 * The agent's side of discovery: broadcasts a signed discover message (multicast on every IPv4
 * interface, subnet broadcast, and any unicast targets), repeated with backoff until a controller
 * acknowledges, verifies each acknowledgement (echoed challenge, fresh, a certificate of the
 * controller profile issued by the CA the ack carries, CA pinned if a fingerprint was given,
 * signature by that certificate's key), and picks one.
 * Choice when several answer within the collection window: the first valid one. Nothing an ack
 * says about itself decides (any signer can claim anything); the others are logged, loudly when
 * they come from another CA.
 */
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { publicKeyB64, verifyBytes, type KeyPairPem } from '../pki/index.ts';
import { hasProfile } from '../pki/index.ts';
import { x509 } from '../pki/index.ts';
import { DEFAULT_GROUP, DEFAULT_PORT, DISCOVER_PAD_BYTES, MAX_SKEW_MS, open, padDatagram, seal, type Ack, type Decline, type Policy } from './messages.ts';

export interface Identity {
  hostId: string;
  name: string;
  keys: KeyPairPem;
}

interface DiscoverOptions {
  identity: Identity;
  policy: Policy;
  labels: Record<string, string>;
  group?: string;
  port?: number;
  /** Extra unicast targets, "host" or "host:port". */
  targets?: string[];
  /** Send only to `targets`: no multicast, no broadcast (tests and benchmarks on loopback; networks that filter multicast). */
  onlyTargets?: boolean;
  /** SHA-256 (hex) of the CA certificate to accept; any CA when absent. */
  pinnedCaFingerprint?: string;
  /** How long to keep listening after the first acknowledgement, for a choice. */
  collectMs?: number;
  log?: Logger;
  signal?: AbortSignal;
  now?: () => number;
}

export interface Acknowledged {
  ack: Ack;
  caCertPem: string;
  caFingerprint: string;
}

class AckRejected extends Error {}

const MAX_DECLINES_LOGGED = 100;

/** A copy in a plain ArrayBuffer, which the x509 library's types ask for. */
function ab(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

function pem(der: Buffer): string {
  return new x509.X509Certificate(ab(der)).toString('pem');
}

/** Verifies an acknowledgement for our challenge; throws AckRejected saying why not. */
export async function verifyAck(
  datagram: Buffer,
  expect: { hostId: string; challenge: string; pinnedCaFingerprint?: string; now: number },
): Promise<Acknowledged> {
  let opened;
  try {
    opened = open(datagram);
  } catch (e) {
    throw new AckRejected((e as Error).message);
  }
  const { body, bodyBytes, sig } = opened;
  if (body.type !== 'ack') throw new AckRejected(`not an ack (${body.type})`);
  if (body.hostId !== expect.hostId) throw new AckRejected(`ack is for host ${body.hostId}`);
  if (body.challenge !== expect.challenge) throw new AckRejected('ack does not answer our current challenge (replayed or late)');
  if (Math.abs(expect.now - body.sentAt) > MAX_SKEW_MS) throw new AckRejected('ack is stale');
  const caDer = Buffer.from(body.caCert, 'base64');
  const fingerprint = createHash('sha256').update(caDer).digest('hex');
  if (
    expect.pinnedCaFingerprint &&
    fingerprint !==
      expect.pinnedCaFingerprint
        .toLowerCase()
        .replace(/^sha256:/, '')
        .replace(/:/g, '')
  ) {
    throw new AckRejected(`CA fingerprint ${fingerprint} is not the pinned one`);
  }
  let ca: x509.X509Certificate;
  let node: x509.X509Certificate;
  try {
    ca = new x509.X509Certificate(ab(caDer));
    node = new x509.X509Certificate(ab(Buffer.from(body.nodeCert, 'base64')));
  } catch {
    throw new AckRejected('ack carries unreadable certificates');
  }
  if (!(await node.verify({ publicKey: ca.publicKey, date: new Date(expect.now) })))
    throw new AckRejected("the controller's certificate is not issued by the CA in the ack");
  // The CA also issues hosts, operators and port authenticators: only a controller may answer.
  if (!hasProfile(node, 'server')) throw new AckRejected(`the ack is signed by a certificate that is not a controller's (${node.subject})`);
  const nodeKey = createPublicKey({ key: Buffer.from(node.publicKey.rawData), format: 'der', type: 'spki' });
  if (!verifyBytes(nodeKey, bodyBytes, sig)) throw new AckRejected('ack signature does not verify');
  return { ack: body, caCertPem: pem(caDer), caFingerprint: fingerprint };
}

function targets(o: DiscoverOptions): { multicast: string[]; broadcast: string[]; unicast: { host: string; port: number }[] } {
  const multicast: string[] = [];
  const broadcast: string[] = [];
  for (const addrs of o.onlyTargets ? [] : Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4') continue;
      multicast.push(a.address);
      if (a.internal) continue;
      const ip = a.address.split('.').map(Number);
      const mask = a.netmask.split('.').map(Number);
      broadcast.push(ip.map((b, i) => (b | (~mask[i]! & 255)) & 255).join('.'));
    }
  }
  const port = o.port ?? DEFAULT_PORT;
  const unicast = (o.targets ?? []).map((t) => {
    const [host, p] = t.split(':');
    return { host: host!, port: p ? Number(p) : port };
  });
  return { multicast, broadcast, unicast };
}

/**
 * The choice among valid acks: the first to arrive (the first in the list among equals). What an
 * ack claims about itself never counts: a signer that may answer at all could claim anything. Pure.
 */
export function chooseAck<T extends { at: number }>(got: T[]): T {
  if (!got.length) throw new Error('no acknowledgement to choose from');
  return got.reduce((best, g) => (g.at < best.at ? g : best));
}

/** Sends discover rounds with backoff until an acceptable acknowledgement arrives. */
export async function discoverController(o: DiscoverOptions): Promise<Acknowledged> {
  const now = () => o.now?.() ?? Date.now();
  const sock: Socket = createSocket({ type: 'udp4' });
  await new Promise<void>((r) => sock.bind(0, r));
  sock.setBroadcast(true);
  sock.setMulticastTTL(1);
  let challenge = '';
  let got: { acked: Acknowledged; at: number }[] = [];
  const declinedSeen = new Set<string>();
  let wake: (() => void) | null = null;
  sock.on('message', (msg, from) => {
    void verifyAck(msg, { hostId: o.identity.hostId, challenge, pinnedCaFingerprint: o.pinnedCaFingerprint, now: now() })
      .then((acked) => {
        got.push({ acked, at: now() });
        wake?.();
      })
      .catch((e: Error) => {
        // A decline is worth telling the operator about (once per sender and reasons, and only
        // so many: anyone who saw our challenge on the LAN can send them).
        try {
          const { body } = open(msg);
          if (body.type === 'decline' && body.challenge === challenge) {
            const d = body as Decline;
            const key = `${from.address}:${d.reasons.join('|')}`;
            if (!declinedSeen.has(key) && declinedSeen.size < MAX_DECLINES_LOGGED) {
              declinedSeen.add(key);
              o.log?.warn({ from: from.address, reasons: d.reasons }, `controller at ${from.address} declined this host's policy: ${d.reasons.join('; ')}`);
            }
            return;
          }
        } catch {
          // fall through to the generic note
        }
        o.log?.warn({ err: e.message }, 'discovery answer rejected');
      });
  });
  const t = targets(o);
  const group = o.group ?? DEFAULT_GROUP;
  const port = o.port ?? DEFAULT_PORT;
  let backoff = 500;
  try {
    for (let round = 1; ; round++) {
      if (o.signal?.aborted) throw new Error('discovery aborted');
      challenge = randomBytes(16).toString('base64');
      got = [];
      // Padded: a controller answers no more bytes than it was sent.
      const msg = padDatagram(
        seal(
          {
            type: 'discover',
            hostId: o.identity.hostId,
            name: o.identity.name,
            publicKey: publicKeyB64(o.identity.keys.publicKey),
            challenge,
            sentAt: now(),
            policy: o.policy,
            labels: o.labels,
          },
          o.identity.keys.privateKey,
        ),
        DISCOVER_PAD_BYTES,
      );
      const sends: Promise<void>[] = [];
      const send = (addr: string, p: number) => sends.push(new Promise((r) => sock.send(msg, p, addr, () => r())));
      for (const iface of t.multicast) {
        try {
          sock.setMulticastInterface(iface);
          send(group, port);
          await Promise.all(sends.splice(0));
        } catch {
          // an interface that cannot multicast
        }
      }
      for (const b of t.broadcast) send(b, port);
      for (const u of t.unicast) send(u.host, u.port);
      await Promise.all(sends);
      // Wait for a first ack (up to the backoff interval), then a short window for others.
      const deadline = now() + backoff;
      while (!got.length && now() < deadline && !o.signal?.aborted) await new Promise<void>((r) => ((wake = r), setTimeout(r, Math.max(1, deadline - now()))));
      if (got.length) {
        await new Promise((r) => setTimeout(r, o.collectMs ?? 300));
        const best = chooseAck(got);
        const others = got.filter((g) => g !== best).map((g) => ({ endpoint: g.acked.ack.endpoint, caFingerprint: g.acked.caFingerprint }));
        if (others.some((g) => g.caFingerprint !== best.acked.caFingerprint)) {
          o.log?.warn(
            { chosen: best.acked.caFingerprint, others },
            'controllers of different cluster CAs answered; the first was chosen. Pin the cluster with --ca-fingerprint',
          );
        }
        o.log?.info({ endpoint: best.acked.ack.endpoint, caFingerprint: best.acked.caFingerprint, alternatives: others, round }, 'controller found');
        return best.acked;
      }
      if (round === 1 || round % 5 === 0) o.log?.info({ round, nextInMs: Math.min(backoff * 2, 30_000) }, 'no controller answered yet; still discovering');
      backoff = Math.min(backoff * 2, 30_000);
    }
  } finally {
    sock.close();
  }
}
