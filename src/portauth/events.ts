/**
 * What the port controller learns, as plain data: hostapd's control-interface events (from
 * `hostapd_cli` in interactive mode), the RADIUS decisions FreeRADIUS writes (freeradius.ts), and
 * from both, which network each switch port belongs in. Pure.
 */

/** hostapd station MACs are colon-separated lower case; RADIUS's Calling-Station-Id uses dashes. */
export function normMac(mac: string): string {
  return mac.toLowerCase().replace(/-/g, ':');
}

export type PortEvent = { kind: 'connected' | 'disconnected' | 'eap-success' | 'eap-failure' | 'eap-started'; mac: string };

/** One line of `hostapd_cli` output, e.g. `> <3>AP-STA-CONNECTED 02:00:00:00:01:01`; undefined for anything else. */
export function parseHostapdEvent(line: string): PortEvent | undefined {
  const m = /<\d>(AP-STA-CONNECTED|AP-STA-DISCONNECTED|CTRL-EVENT-EAP-SUCCESS2?|CTRL-EVENT-EAP-FAILURE2?|CTRL-EVENT-EAP-TIMEOUT-FAILURE2?|CTRL-EVENT-EAP-STARTED) ([0-9a-fA-F:]{17})/.exec(line);
  if (!m) return undefined;
  const e = m[1]!;
  const kind = e === 'AP-STA-CONNECTED' ? 'connected' : e === 'AP-STA-DISCONNECTED' ? 'disconnected' : e.startsWith('CTRL-EVENT-EAP-SUCCESS') ? 'eap-success' : e === 'CTRL-EVENT-EAP-STARTED' ? 'eap-started' : 'eap-failure';
  return { kind, mac: normMac(m[2]!) };
}

export type Decision = { accept: true; mac: string; serial: string; cn: string; segment: number } | { accept: false; mac: string; cn: string; reason: string };

/** A decision line of freeradius.ts's linelog format. */
export function parseDecision(line: string): Decision | undefined {
  const a = /^accept mac=(\S+) serial=([0-9a-fA-F]*) cn=(\S*) segment=(\d+)\s*$/.exec(line);
  if (a) return { accept: true, mac: normMac(a[1]!), serial: a[2]!.toLowerCase().replace(/^0+/, ''), cn: a[3]!, segment: Number(a[4]) };
  const r = /^reject mac=(\S+) cn=(\S*) reason=(.*)$/.exec(line);
  if (r) return { accept: false, mac: normMac(r[1]!), cn: r[2]!, reason: r[3]!.trim() || 'rejected' };
  return undefined;
}

/** A switch port as the controller holds it. */
export interface PortState {
  port: string;
  mac?: string;
  /** The network the port is in (its segment), or none. */
  segment?: number;
  serial?: string;
  cn?: string;
  /** Why the port is in no network, when it is not. */
  reason: string;
}

/**
 * The next state of a port after an event: a station that hostapd authorized joins the segment of
 * the last accept decision for its MAC (a decision older than the authorization of another
 * station is not used); a disconnect or failure takes the port out.
 */
export function nextPortState(cur: PortState, event: PortEvent, decisions: ReadonlyMap<string, Decision>): PortState {
  switch (event.kind) {
    case 'connected':
    case 'eap-success': {
      // eap-success alone is a re-authentication of a port already authorized (hostapd sends no new AP-STA-CONNECTED).
      if (event.kind === 'eap-success' && cur.mac !== event.mac) return cur;
      const d = decisions.get(event.mac);
      if (!d) return { port: cur.port, mac: event.mac, reason: `station ${event.mac} was authorized without a RADIUS decision on record` };
      if (!d.accept) return { port: cur.port, mac: event.mac, reason: `station ${event.mac} was rejected: ${d.reason}` };
      return { port: cur.port, mac: event.mac, segment: d.segment, serial: d.serial, cn: d.cn, reason: `authorized as ${d.cn}` };
    }
    case 'disconnected':
      return cur.mac && cur.mac !== event.mac ? cur : { port: cur.port, mac: event.mac, reason: `station ${event.mac} disconnected` };
    case 'eap-failure': {
      const d = decisions.get(event.mac);
      return { port: cur.port, mac: event.mac, reason: `authentication of ${event.mac} failed${d && !d.accept ? `: ${d.reason}` : ''}` };
    }
    default:
      return cur;
  }
}

/** Ports whose authenticated principal is on the revocation list: they must be taken out now. */
export function revokedPorts(ports: Iterable<PortState>, revokedSerials: ReadonlySet<string>): PortState[] {
  return [...ports].filter((p) => p.segment !== undefined && p.serial && revokedSerials.has(p.serial));
}

export function switchBridgeName(segment: number): string {
  return `vnet${segment}`;
}
