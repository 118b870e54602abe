/** Matching a host's configuration policy against a controller's capabilities. Pure. */
import type { Policy } from './messages.ts';

export interface Capabilities {
  cluster: string;
  clusterLabels: Record<string, string>;
  version: string;
  features: string[];
  tenants: string[];
  networks: string[];
}

interface PolicyMatch {
  supported: boolean;
  accepted: string[];
  declined: string[];
}

function versionAtLeast(have: string, want: string): boolean {
  const a = have.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = want.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** Each policy item is accepted or declined with a reason; the policy is supported when none is declined. */
export function matchPolicy(p: Policy, c: Capabilities): PolicyMatch {
  const accepted: string[] = [];
  const declined: string[] = [];
  const item = (ok: boolean, name: string, why: string) => (ok ? accepted.push(name) : declined.push(`${name}: ${why}`));
  if (p.cluster !== undefined) item(p.cluster === c.cluster, `cluster=${p.cluster}`, `this controller's cluster is '${c.cluster}'`);
  for (const [k, v] of Object.entries(p.clusterLabels ?? {})) {
    item(
      c.clusterLabels[k] === v,
      `label:${k}=${v}`,
      c.clusterLabels[k] === undefined ? 'the cluster has no such label' : `the cluster has ${k}=${c.clusterLabels[k]}`,
    );
  }
  if (p.minControllerVersion)
    item(versionAtLeast(c.version, p.minControllerVersion), `version>=${p.minControllerVersion}`, `controller version is ${c.version}`);
  for (const f of p.features ?? []) item(c.features.includes(f), `feature:${f}`, `not among this controller's features (${c.features.join(', ') || 'none'})`);
  if (p.dedicatedTo?.tenant !== undefined) item(c.tenants.includes(p.dedicatedTo.tenant), `tenant=${p.dedicatedTo.tenant}`, 'no such tenant here');
  if (p.dedicatedTo?.network !== undefined) item(c.networks.includes(p.dedicatedTo.network), `network=${p.dedicatedTo.network}`, 'no such network here');
  return { supported: declined.length === 0, accepted, declined };
}
