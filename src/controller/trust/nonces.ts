/**
 * Discovery nonces: each acknowledgement binds a fresh nonce to the host and key it answered, and
 * an enrollment must bring it back. Every ack stores one, for any stranger whose datagram verifies
 * against the key it carries itself, so they are bounded by memory (the oldest go first) and expire.
 */
import { BoundedExpiringMap } from '../../common/bounded-map.ts';
import { newNonce, type Discover } from '../../discovery/index.ts';

export interface BoundNonce {
  hostId: string;
  publicKey: string;
  labels: Record<string, string>;
}

const NONCE_TTL_MS = 10 * 60_000;
const DEFAULT_NONCE_MEMORY_BYTES = 16 << 20;

export class DiscoveryNonces {
  private readonly map: BoundedExpiringMap<BoundNonce>;

  constructor(maxBytes = DEFAULT_NONCE_MEMORY_BYTES) {
    this.map = new BoundedExpiringMap({ ttlMs: NONCE_TTL_MS, maxBytes });
  }

  /** Called by the discovery responder for each acknowledgement. */
  issue(d: Discover): string {
    const nonce = newNonce();
    this.map.set(nonce, { hostId: d.hostId, publicKey: d.publicKey, labels: d.labels }, Date.now());
    return nonce;
  }

  get(nonce: string): BoundNonce | undefined {
    return this.map.get(nonce, Date.now());
  }

  /** Puts one back (an enrollment refused for now keeps its nonce good for the retry). */
  keep(nonce: string, bound: BoundNonce): void {
    this.map.set(nonce, bound, Date.now());
  }

  delete(nonce: string): void {
    this.map.delete(nonce);
  }

  /** Estimated bytes held now. */
  get bytes(): number {
    return this.map.bytes;
  }
}
