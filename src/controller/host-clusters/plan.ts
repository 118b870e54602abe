/**
 * Dedicated host clusters: a host in a tenant's cluster runs that tenant's instances only. Pure:
 * which hosts are dedicated to whom (for placement), which instances break that on a set of hosts
 * (for add-host's refusal), and the condition a cluster shows when a violation is found later.
 */
import type { Condition } from '../../model/common.ts';

export interface Dedication {
  tenant: string;
  cluster: string;
}

interface ClusterView {
  name: string;
  spec: { tenant: string; hosts: string[] };
}

interface PlacedInstance {
  name: string;
  spec: { tenant: string };
  status: { hostId?: string; hostName?: string };
}

/** Host id → the tenant (and cluster) it is dedicated to. A host is in one cluster at most (add-host refuses a second). */
export function dedicatedHosts(clusters: readonly ClusterView[]): Map<string, Dedication> {
  const out = new Map<string, Dedication>();
  for (const c of clusters) for (const h of c.spec.hosts) if (!out.has(h)) out.set(h, { tenant: c.spec.tenant, cluster: c.name });
  return out;
}

/** Whether an instance of `tenant` may be placed on a host with this dedication (none: any tenant's may). */
export function mayPlace(tenant: string | undefined, d: Dedication | undefined): boolean {
  return !d || d.tenant === tenant;
}

interface ForeignInstance {
  name: string;
  tenant: string;
  hostName: string;
}

/**
 * Instances of tenants other than `tenant` that are placed on any of `hostIds`, running or not: a
 * stopped instance keeps its host (its volumes are there) and starts there again.
 */
export function foreignInstances(hostIds: Iterable<string>, tenant: string, instances: readonly PlacedInstance[]): ForeignInstance[] {
  const hosts = new Set(hostIds);
  return instances
    .filter((i) => i.status.hostId && hosts.has(i.status.hostId) && i.spec.tenant !== tenant)
    .map((i) => ({ name: i.name, tenant: i.spec.tenant, hostName: i.status.hostName ?? i.status.hostId! }))
    .sort((a, b) => a.hostName.localeCompare(b.hostName) || a.name.localeCompare(b.name));
}

/** "web1 (tenant default) on h2, ..." at most `max` named. */
export function describeForeign(found: readonly ForeignInstance[], max = 10): string {
  const named = found.slice(0, max).map((f) => `${f.name} (tenant ${f.tenant}) on ${f.hostName}`);
  return `${named.join(', ')}${found.length > max ? `, and ${found.length - max} more` : ''}`;
}

const DEDICATED_CONDITION = 'Dedicated';

/** The cluster's `Dedicated` condition: False, naming the instances, while another tenant's instance sits on one of its hosts. */
export function dedicationCondition(cluster: ClusterView, instances: readonly PlacedInstance[]): Omit<Condition, 'lastTransitionTime'> {
  const found = foreignInstances(cluster.spec.hosts, cluster.spec.tenant, instances);
  if (!found.length)
    return {
      type: DEDICATED_CONDITION,
      status: 'True',
      reason: 'OnlyTenantInstances',
      message: `every instance on the cluster's hosts is tenant ${cluster.spec.tenant}'s`,
    };
  return {
    type: DEDICATED_CONDITION,
    status: 'False',
    reason: 'ForeignInstances',
    message: `hosts of tenant ${cluster.spec.tenant}'s cluster run other tenants' instances: ${describeForeign(found)}`,
  };
}
