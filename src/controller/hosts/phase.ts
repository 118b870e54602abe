/** Host phase from trust, cordon and heartbeats. Pure. */
import type { HostTrust } from '../../model/trust.ts';

export interface HostLiveness {
  cordoned: boolean;
  connected: boolean;
  lastHeartbeatAt?: string;
  trust?: HostTrust['state'];
}

export type LivePhase = 'pending-approval' | 'trusted' | 'ready' | 'cordoned' | 'lost' | 'rejected' | 'revoked';

/**
 * Trust comes first: a host waiting for approval, rejected or revoked is that, whatever else.
 * A trusted host that never sent a heartbeat is `trusted`. After that, a host is lost once its
 * heartbeats stop for `lostAfterMs`, connected or not: a brief reconnect does not flap it, and a
 * connection that is open but silent does not hide a hung agent.
 */
export function hostPhase(h: HostLiveness, now: Date, lostAfterMs: number): LivePhase {
  if (h.trust === 'pending') return 'pending-approval';
  if (h.trust === 'rejected') return 'rejected';
  if (h.trust === 'revoked') return 'revoked';
  if (!h.lastHeartbeatAt) return h.connected ? (h.cordoned ? 'cordoned' : 'ready') : 'trusted';
  if (now.getTime() - Date.parse(h.lastHeartbeatAt) > lostAfterMs) return 'lost';
  return h.cordoned ? 'cordoned' : 'ready';
}
