/**
 * Where a network must exist and with which flood lists: on every host that runs (or holds) an
 * instance with a NIC on it, each host's VXLAN device flooding to the other such hosts' underlay
 * addresses. Hosts that no longer need it have it taken off. Pure: the reconciler sends what the
 * plan says and folds the agents' answers back.
 */
import type { Network, NetworkOnHost } from '../model/network.ts';

export interface NetworkWorld {
  /** Instances that are placed, with the networks of their NICs. */
  placed: { hostId: string; networks: string[] }[];
  hosts: { id: string; name: string; underlay?: string; connected: boolean }[];
  inFlight: (hostId: string, opId: string) => boolean;
  now: Date;
  newOpId: (hostId: string) => string;
}

export interface NetworkSend {
  hostId: string;
  opId: string;
  kind: 'network.ensure' | 'network.remove';
  peers: string[];
}

export interface NetworkPlan {
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
    (e.state === 'sent' || e.state === 'removing') ? !w.inFlight(e.hostId, e.opId) : e.state === 'failed' && w.now.getTime() - Date.parse(e.at) >= RETRY_MS;

  for (const h of needed) {
    const peers = needed.filter((o) => o.id !== h.id && o.underlay).map((o) => o.underlay!).sort();
    const e = current.get(h.id);
    const changed = !e || e.state === 'removing' || JSON.stringify(e.peers) !== JSON.stringify(peers);
    if (h.connected && (changed || stale(e!))) {
      const opId = w.newOpId(h.id);
      hosts.push({ hostId: h.id, hostName: h.name, peers, state: 'sent', opId, at: w.now.toISOString() });
      sends.push({ hostId: h.id, opId, kind: 'network.ensure', peers });
    } else if (e) hosts.push(e);
    else hosts.push({ hostId: h.id, hostName: h.name, peers, state: 'sent', opId: '', at: w.now.toISOString(), error: 'host not connected' });
  }
  for (const e of net.status.hosts) {
    if (neededIds.has(e.hostId)) continue;
    const h = byId.get(e.hostId);
    if (!h) continue; // the host is gone, and the network with it
    if (h.connected && (e.state !== 'removing' || stale(e))) {
      const opId = w.newOpId(h.id);
      hosts.push({ ...e, state: 'removing', opId, at: w.now.toISOString(), error: undefined });
      sends.push({ hostId: h.id, opId, kind: 'network.remove', peers: [] });
    } else hosts.push(e);
  }
  hosts.sort((a, b) => a.hostName.localeCompare(b.hostName));
  return {
    hosts,
    sends,
    remove: deleting && hosts.length === 0,
    message: missingUnderlay.length ? `no underlay address on ${missingUnderlay.join(', ')}: their guests reach only guests of the same host` : undefined,
  };
}

/** Folds an agent's answer into the host's entry: ensured, removed (the entry goes) or failed. */
export function applyAnswer(hosts: NetworkOnHost[], opId: string, ok: boolean, error: string | undefined, now: Date): NetworkOnHost[] | undefined {
  const e = hosts.find((x) => x.opId === opId);
  if (!e) return undefined;
  if (ok && e.state === 'removing') return hosts.filter((x) => x !== e);
  return hosts.map((x) => (x === e ? { ...x, state: ok ? 'ready' : 'failed', error: ok ? undefined : error, at: now.toISOString() } : x));
}
