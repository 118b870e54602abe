/** Host phase from desired and observed facts. Pure. */

export interface HostLiveness {
  cordoned: boolean;
  connected: boolean;
  lastHeartbeatAt?: string;
}

/**
 * A host is lost once its heartbeats stop for `lostAfterMs`, connected or not: a brief reconnect
 * does not flap it, and a connection that is open but silent does not hide a hung agent.
 */
export function hostPhase(h: HostLiveness, now: Date, lostAfterMs: number): 'ready' | 'cordoned' | 'lost' {
  const last = h.lastHeartbeatAt ? Date.parse(h.lastHeartbeatAt) : 0;
  if (now.getTime() - last > lostAfterMs) return 'lost';
  return h.cordoned ? 'cordoned' : 'ready';
}
