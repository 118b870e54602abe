/**
 * Where a network must exist and with which flood lists: on every host that runs (or holds) an
 * instance with a NIC on it, each host's VXLAN device flooding to the other such hosts' underlay
 * addresses. Hosts that no longer need it have it taken off. Pure: the reconciler sends what the
 * plan says and folds the agents' answers back.
 */
import type { RemoteMac } from '../../model/agent-protocol.ts';
import type { Network, NetworkOnHost } from '../../model/network.ts';

export interface NetworkWorld {
  /** Instances that are placed, with the networks of their NICs (and the NICs' MACs). */
  placed: { hostId: string; networks: string[]; nics?: { network: string; mac: string }[] }[];
  hosts: { id: string; name: string; underlay?: string; connected: boolean }[];
  inFlight: (hostId: string, opId: string) => boolean;
  now: Date;
  newOpId: (hostId: string) => string;
}

interface NetworkSend {
  hostId: string;
  opId: string;
  kind: 'network.ensure' | 'network.remove';
  peers: string[];
  macs?: RemoteMac[];
}

interface NetworkPlan {
  hosts: NetworkOnHost[];
  sends: NetworkSend[];
  /** Deleting, and off every host: the record and its segment can go. */
  remove: boolean;
  message?: string;
}

/** A failed operation is tried again after this long (or at once when the peers change). */
export const RETRY_MS = 10_000;

export function planNetwork(net: Network, w: NetworkWorld): NetworkPlan {
  const deleting = net.status.phase === 'deleting';
  const neededIds = deleting ? new Set<string>() : new Set(w.placed.filter((p) => p.networks.includes(net.id)).map((p) => p.hostId));
  const byId = new Map(w.hosts.map((h) => [h.id, h]));
  const needed = [...neededIds].map((id) => byId.get(id)).filter((h): h is NonNullable<typeof h> => !!h);
  const missingUnderlay = needed.filter((h) => !h.underlay).map((h) => h.name);
  const current = new Map(net.status.hosts.map((e) => [e.hostId, e]));
  const hosts: NetworkOnHost[] = [];
  const sends: NetworkSend[] = [];
  const stale = (e: NetworkOnHost) =>
    e.state === 'sent' || e.state === 'removing' ? !w.inFlight(e.hostId, e.opId) : e.state === 'failed' && w.now.getTime() - Date.parse(e.at) >= RETRY_MS;

  for (const h of needed) {
    const others = needed.filter((o) => o.id !== h.id && o.underlay);
    const peers = others.map((o) => o.underlay!).sort();
    const macs = others
      .flatMap((o) =>
        w.placed
          .filter((p) => p.hostId === o.id)
          .flatMap((p) => (p.nics ?? []).filter((n) => n.network === net.id).map((n) => ({ mac: n.mac, dst: o.underlay! }))),
      )
      .sort((a, b) => a.mac.localeCompare(b.mac));
    const e = current.get(h.id);
    const changed = !e || e.state === 'removing' || JSON.stringify(e.peers) !== JSON.stringify(peers) || JSON.stringify(e.macs ?? []) !== JSON.stringify(macs);
    const entry = { hostId: h.id, hostName: h.name, peers, ...(macs.length ? { macs } : {}) };
    if (h.connected && (changed || stale(e!))) {
      const opId = w.newOpId(h.id);
      hosts.push({ ...entry, state: 'sent', opId, at: w.now.toISOString() });
      sends.push({ hostId: h.id, opId, kind: 'network.ensure', peers, macs });
    } else if (e) hosts.push(e);
    else hosts.push({ ...entry, state: 'sent', opId: '', at: w.now.toISOString(), error: 'host not connected' });
  }
  const unconfirmed: string[] = [];
  for (const e of net.status.hosts) {
    const h = byId.get(e.hostId);
    if (neededIds.has(e.hostId) && h) continue;
    if (!h) {
      // The host's record was deleted, not the machine: it may still have the bridge and VXLAN
      // device, and a segment id reused by another network would join the two. The entry (and
      // with it the segment) stays until the host enrolls again and removes them, or an operator
      // vouches that they are gone (forgetHost).
      unconfirmed.push(e.hostName);
      hosts.push({
        ...e,
        error: `host record deleted; segment ${net.spec.segment} stays reserved until the host confirms its devices are gone (it enrolls again) or an operator forgets it (outrig network forget-host ${net.name} ${e.hostId})`,
      });
      continue;
    }
    if (h.connected && (e.state !== 'removing' || stale(e))) {
      const opId = w.newOpId(h.id);
      hosts.push({ ...e, state: 'removing', opId, at: w.now.toISOString(), error: undefined });
      sends.push({ hostId: h.id, opId, kind: 'network.remove', peers: [] });
    } else hosts.push(e);
  }
  hosts.sort((a, b) => a.hostName.localeCompare(b.hostName));
  const messages = [
    missingUnderlay.length ? `no underlay address on ${missingUnderlay.join(', ')}: their guests reach only guests of the same host` : '',
    unconfirmed.length
      ? `deleted host${unconfirmed.length > 1 ? 's' : ''} ${unconfirmed.join(', ')} never confirmed removing segment ${net.spec.segment}: it stays reserved`
      : '',
  ].filter(Boolean);
  return { hosts, sends, remove: deleting && hosts.length === 0, message: messages.length ? messages.join('; ') : undefined };
}

/**
 * An operator vouches that a deleted host no longer has the network's devices (the machine was
 * wiped, rebuilt or retired): its entry goes, and with the last one a network being deleted may
 * go and its segment be reused. Refused for a host that still has a record: that host confirms
 * by itself when it connects.
 */
export function forgetHost(
  net: Network,
  hostRef: string,
  hostExists: (hostId: string) => boolean,
): { ok: true; hosts: NetworkOnHost[] } | { ok: false; status: 404 | 409; message: string } {
  const e = net.status.hosts.find((x) => x.hostId === hostRef) ?? net.status.hosts.find((x) => x.hostName === hostRef);
  if (!e) return { ok: false, status: 404, message: `network ${net.name} has no entry for host '${hostRef}'` };
  if (hostExists(e.hostId))
    return {
      ok: false,
      status: 409,
      message: `host ${e.hostName} still has a record: it confirms removing segment ${net.spec.segment} itself when it connects; delete the host first if the machine is gone for good`,
    };
  return { ok: true, hosts: net.status.hosts.filter((x) => x !== e) };
}

/** Folds an agent's answer into the host's entry: ensured, removed (the entry goes) or failed. */
export function applyAnswer(hosts: NetworkOnHost[], opId: string, ok: boolean, error: string | undefined, now: Date): NetworkOnHost[] | undefined {
  const e = hosts.find((x) => x.opId === opId);
  if (!e) return undefined;
  if (ok && e.state === 'removing') return hosts.filter((x) => x !== e);
  return hosts.map((x) => (x === e ? { ...x, state: ok ? 'ready' : 'failed', error: ok ? undefined : error, at: now.toISOString() } : x));
}
