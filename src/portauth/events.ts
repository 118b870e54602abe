/**
 * What the port controller learns, as plain data: hostapd's control-interface events (from
 * `hostapd_cli` in interactive mode), the RADIUS decisions FreeRADIUS writes (freeradius.ts), and
 * from both, which network each switch port belongs in. Pure.
 */

/** hostapd station MACs are colon-separated lower case; RADIUS's Calling-Station-Id uses dashes. */
function normMac(mac: string): string {
  return mac.toLowerCase().replace(/-/g, ':');
}

type PortEvent = { kind: 'connected' | 'disconnected' | 'eap-success' | 'eap-failure' | 'eap-started'; mac: string };

/** One line of `hostapd_cli` output, e.g. `> <3>AP-STA-CONNECTED 02:00:00:00:01:01`; undefined for anything else. */
export function parseHostapdEvent(line: string): PortEvent | undefined {
  const m =
    /<\d>(AP-STA-CONNECTED|AP-STA-DISCONNECTED|CTRL-EVENT-EAP-SUCCESS2?|CTRL-EVENT-EAP-FAILURE2?|CTRL-EVENT-EAP-TIMEOUT-FAILURE2?|CTRL-EVENT-EAP-STARTED) ([0-9a-fA-F:]{17})/.exec(
      line,
    );
  if (!m) return undefined;
  const e = m[1]!;
  const kind =
    e === 'AP-STA-CONNECTED'
      ? 'connected'
      : e === 'AP-STA-DISCONNECTED'
        ? 'disconnected'
        : e.startsWith('CTRL-EVENT-EAP-SUCCESS')
          ? 'eap-success'
          : e === 'CTRL-EVENT-EAP-STARTED'
            ? 'eap-started'
            : 'eap-failure';
  return { kind, mac: normMac(m[2]!) };
}

/** A RADIUS decision for one station on one port (hostapd names the port in NAS-Port-Id), at `at` (epoch ms). */
export type Decision =
  | { accept: true; port: string; mac: string; at: number; serial: string; cn: string; segment: number }
  | { accept: false; port: string; mac: string; at: number; cn: string; reason: string };

/**
 * A decision counts for this long after RADIUS made it. hostapd reports the authorization a few
 * milliseconds after RADIUS answers; a decision older than this is for an earlier authentication
 * and must not admit a station now (and the table of them stays bounded).
 */
export const DECISION_TTL_MS = 60_000;

/** A decision line of freeradius.ts's linelog format (`at` is FreeRADIUS's request time, in seconds). */
export function parseDecision(line: string): Decision | undefined {
  const a = /^accept mac=(\S+) port=(\S+) at=(\d+) serial=([0-9a-fA-F]*) cn=(\S*) segment=(\d+)\s*$/.exec(line);
  if (a)
    return {
      accept: true,
      mac: normMac(a[1]!),
      port: a[2]!,
      at: Number(a[3]) * 1000,
      serial: a[4]!.toLowerCase().replace(/^0+/, ''),
      cn: a[5]!,
      segment: Number(a[6]),
    };
  const r = /^reject mac=(\S+) port=(\S+) at=(\d+) cn=(\S*) reason=(.*)$/.exec(line);
  if (r) return { accept: false, mac: normMac(r[1]!), port: r[2]!, at: Number(r[3]) * 1000, cn: r[4]!, reason: r[5]!.trim() || 'rejected' };
  return undefined;
}

/** Decisions are kept per port and station: one station's decision never stands in for another port's. */
export function decisionKey(port: string, mac: string): string {
  return `${port} ${mac}`;
}

/** The decision for this station on this port, if RADIUS made one within DECISION_TTL_MS of `now`. */
function freshDecision(decisions: ReadonlyMap<string, Decision>, port: string, mac: string, now: number): Decision | undefined {
  const d = decisions.get(decisionKey(port, mac));
  return d && now - d.at <= DECISION_TTL_MS ? d : undefined;
}

/** Keys of decisions too old to count any more. */
export function expiredDecisions(decisions: ReadonlyMap<string, Decision>, now: number): string[] {
  return [...decisions].filter(([, d]) => now - d.at > DECISION_TTL_MS).map(([k]) => k);
}

/**
 * A switch port as the controller holds it. The port is in a network when one station on it (the
 * holder, `mac`) was authorized with an accept decision; other stations' events change nothing
 * while it holds the port.
 */
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
 * The next state of a port after an event for one station (by MAC). A station that hostapd
 * authorized joins the port to the segment of a recent accept decision for that port and station.
 * While a station holds the port, only its own disconnect or failure takes the port out: any other
 * station (one behind the same link, a guest sending EAPOL frames through its host's bridge)
 * failing, starting, being authorized or being unknown changes nothing. Returns `cur` itself when
 * nothing changes.
 */
export function nextPortState(cur: PortState, event: PortEvent, decisions: ReadonlyMap<string, Decision>, now: number): PortState {
  if (cur.segment !== undefined && event.mac !== cur.mac) return cur;
  switch (event.kind) {
    case 'connected':
    case 'eap-success': {
      // eap-success alone is a re-authentication of a port already authorized (hostapd sends no new AP-STA-CONNECTED).
      if (event.kind === 'eap-success' && cur.mac !== event.mac) return cur;
      const d = freshDecision(decisions, cur.port, event.mac, now);
      if (!d)
        return {
          port: cur.port,
          mac: event.mac,
          reason: `station ${event.mac} was authorized without a recent RADIUS decision for port ${cur.port} on record`,
        };
      if (!d.accept) return { port: cur.port, mac: event.mac, reason: `station ${event.mac} was rejected: ${d.reason}` };
      return { port: cur.port, mac: event.mac, segment: d.segment, serial: d.serial, cn: d.cn, reason: `authorized as ${d.cn}` };
    }
    case 'disconnected':
      return cur.mac && cur.mac !== event.mac ? cur : { port: cur.port, mac: event.mac, reason: `station ${event.mac} disconnected` };
    case 'eap-failure': {
      const d = freshDecision(decisions, cur.port, event.mac, now);
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
