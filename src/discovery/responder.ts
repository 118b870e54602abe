/**
 * The controller's discovery responder: listens for discover datagrams (UDP multicast, broadcast
 * and unicast; the same bytes also arrive over HTTPS at POST /v1/discover), checks each host's
 * policy against this controller's capabilities, and answers with a minimal signed
 * acknowledgement. A declined policy is logged for the operator and, only if configured, answered
 * with the reasons. Everything malformed, unsigned, stale, replayed or oversized is dropped
 * silently and counted, and so is a UDP answer that would be larger than its request.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { BoundedExpiringMap } from '../common/bounded-map.ts';
import {
  DEFAULT_GROUP,
  DEFAULT_PORT,
  Dropped,
  MAX_DATAGRAM,
  openDiscover,
  seal,
  sealedSizeBound,
  type Ack,
  type Decline,
  type Discover,
  type DropReason,
} from './messages.ts';
import { matchPolicy, type Capabilities } from './policy.ts';

interface ResponderOptions {
  group?: string;
  port?: number;
  /**
   * Bind to this one address instead of all: only datagrams sent to it (unicast) are received,
   * no multicast or broadcast. For tests and benchmarks on loopback, and for hosts pointed at
   * the controller with --target.
   */
  address?: string;
  /**
   * Answer unsupported policies with the reasons. Off by default: the reasons tell any sender
   * about the cluster (its name, labels, features, tenants). Declines are logged either way.
   */
  answerDeclines?: boolean;
  capabilities: () => Promise<Capabilities>;
  /** The https URL acks send hosts to; `source` is the asker's address (or 'local'). */
  endpoint: (source: string) => string | Promise<string>;
  /** Registers an enrollment nonce (16 random bytes, base64) for this host and key; returns it. */
  issueNonce: (d: Discover) => string;
  caCertDer: Buffer;
  /** The certificate (controller profile) whose key signs answers, and that key. */
  nodeCertDer: Buffer;
  nodeKeyPem: string;
  /** Messages a second admitted per source address (bursts of twice that); default 50. */
  ratePerSource?: number;
  onDrop?: (reason: DropReason) => void;
  /** `silent`: a declined policy not answered. */
  onAnswer?: (kind: 'ack' | 'decline' | 'silent') => void;
  log?: Logger;
  now?: () => number;
}

/** Memory for what strangers make the responder remember: replay keys and rate-limit buckets. */
const REPLAY_MEMORY_BYTES = 4 << 20;
const BUCKET_MEMORY_BYTES = 4 << 20;
/** Declines are logged at info once per host and reasons in this window, at debug otherwise. */
const DECLINE_LOG_MS = 10 * 60_000;
/** A bucket untouched this long is full again, so forgetting it changes nothing. */
const BUCKET_TTL_MS = 60_000;

export class DiscoveryResponder {
  private sock?: Socket;
  // Discover messages seen recently, by host and challenge: a replay is dropped. Evicted early only
  // under a flood, when a replay is answered again: with a fresh nonce bound to the same host key.
  private readonly replay = new BoundedExpiringMap<true>({ ttlMs: 10 * 60_000, maxBytes: REPLAY_MEMORY_BYTES });
  private readonly buckets = new BoundedExpiringMap<{ tokens: number; at: number }>({ ttlMs: BUCKET_TTL_MS, maxBytes: BUCKET_MEMORY_BYTES });
  private readonly declinesLogged = new BoundedExpiringMap<true>({ ttlMs: DECLINE_LOG_MS, maxBytes: 1 << 20 });

  constructor(private readonly o: ResponderOptions) {}

  private now(): number {
    return this.o.now?.() ?? Date.now();
  }

  private drop(reason: DropReason, detail: string): null {
    this.o.onDrop?.(reason);
    this.o.log?.debug({ reason, detail }, 'discovery message dropped');
    return null;
  }

  /** A token bucket per source address: signature checks cost CPU, so one sender cannot take it all. */
  private admit(source: string): boolean {
    const now = this.now();
    const rate = this.o.ratePerSource ?? 50;
    const b = this.buckets.get(source, now) ?? { tokens: rate * 2, at: now };
    b.tokens = Math.min(rate * 2, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    this.buckets.set(source, b, now);
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /**
   * The answer to one datagram, or null to stay silent. `limit`: the most bytes the answer may have
   * (for UDP, the request's size: the sender's address is not verified, so an answer must not be
   * bigger than what it answers).
   */
  async answer(datagram: Buffer, source = 'local', limit = Infinity): Promise<Buffer | null> {
    if (datagram.length > MAX_DATAGRAM) return this.drop('oversized', `${datagram.length} bytes from ${source}`);
    if (!this.admit(source)) return this.drop('rate-limited', `rate limit for ${source}`);
    let d: Discover;
    try {
      d = openDiscover(datagram, this.now());
    } catch (e) {
      return this.drop(e instanceof Dropped ? e.reason : 'malformed', (e as Error).message);
    }
    const replayKey = `${d.hostId}/${d.challenge}`;
    if (this.replay.get(replayKey, this.now())) return this.drop('replayed', `${d.hostId} challenge ${d.challenge}`);
    this.replay.set(replayKey, true, this.now());
    const m = matchPolicy(d.policy, await this.o.capabilities());
    if (!m.supported) return this.decline(d, m.declined, source, limit);
    const endpoint = await this.o.endpoint(source);
    const ack = (nonce: string): Ack => ({
      type: 'ack',
      hostId: d.hostId,
      challenge: d.challenge,
      nonce,
      endpoint,
      caCert: this.o.caCertDer.toString('base64'),
      nodeCert: this.o.nodeCertDer.toString('base64'),
      sentAt: this.now(),
    });
    // Sized before a nonce is issued: an answer that may not go out must not hold one.
    const size = sealedSizeBound(ack(newNonce()));
    if (size > limit) return this.drop('unpadded', `an ack of ${size} bytes to a request of ${limit} from ${source}`);
    this.o.onAnswer?.('ack');
    return seal(ack(this.o.issueNonce(d)), this.o.nodeKeyPem);
  }

  /** The operator always learns why (the log); the sender only if declines are answered. */
  private decline(d: Discover, reasons: string[], source: string, limit: number): Buffer | null {
    const key = `${d.hostId}/${reasons.join('|')}`;
    const first = !this.declinesLogged.get(key, this.now());
    if (first) this.declinesLogged.set(key, true, this.now());
    this.o.log?.[first ? 'info' : 'debug'](
      { hostId: d.hostId, name: d.name, source, reasons, answered: !!this.o.answerDeclines },
      `declined the policy of host ${d.hostId} at ${source}: ${reasons.join('; ')}`,
    );
    if (!this.o.answerDeclines) {
      this.o.onAnswer?.('silent');
      return null;
    }
    const decline: Decline = {
      type: 'decline',
      hostId: d.hostId,
      challenge: d.challenge,
      nodeCert: this.o.nodeCertDer.toString('base64'),
      reasons,
      sentAt: this.now(),
    };
    const size = sealedSizeBound(decline);
    if (size > limit) return this.drop('unpadded', `a decline of ${size} bytes to a request of ${limit} from ${source}`);
    this.o.onAnswer?.('decline');
    return seal(decline, this.o.nodeKeyPem);
  }

  async start(): Promise<number> {
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    this.sock = sock;
    sock.on('message', (msg, rinfo) => {
      void this.answer(msg, rinfo.address, msg.length)
        .then((reply) => {
          if (reply) sock.send(reply, rinfo.port, rinfo.address);
        })
        .catch((e: Error) => this.o.log?.warn({ err: e.message }, 'discovery answer failed'));
    });
    sock.on('error', (e) => this.o.log?.warn({ err: e.message }, 'discovery socket error'));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(this.o.port ?? DEFAULT_PORT, this.o.address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    try {
      // Enrollment storms arrive in bursts; the kernel caps this at net.core.rmem_max.
      sock.setRecvBufferSize(4 << 20);
    } catch {
      // keep the default
    }
    const group = this.o.group ?? DEFAULT_GROUP;
    if (this.o.address) return sock.address().port;
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.family !== 'IPv4') continue;
        try {
          sock.addMembership(group, a.address);
        } catch {
          // An interface without multicast (some loopbacks): unicast and broadcast still reach us.
        }
      }
    }
    return sock.address().port;
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}

export function newNonce(): string {
  return randomBytes(16).toString('base64');
}
