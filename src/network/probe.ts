/**
 * Which backends this kernel can run, found by trying, never assumed: in a network namespace
 * made for the probe and deleted after it, the probe makes a VXLAN device, an 802.1Q VLAN device
 * and a VLAN-filtering bridge, and keeps the kernel's own error where one fails.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface BackendProbe {
  name: 'vxlan' | 'vlan';
  available: boolean;
  reason: string;
}

async function attempt(args: string[]): Promise<string | undefined> {
  try {
    await exec('ip', args);
    return undefined;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return (err.stderr ?? err.message).trim().split('\n')[0];
  }
}

export async function probeBackends(): Promise<BackendProbe[]> {
  const ns = `outrig-probe-${process.pid}`;
  const made = await attempt(['netns', 'add', ns]);
  if (made) {
    const reason = `cannot make a network namespace to probe in (${made}); the agent needs CAP_NET_ADMIN and CAP_SYS_ADMIN`;
    return [
      { name: 'vxlan', available: false, reason },
      { name: 'vlan', available: false, reason },
    ];
  }
  try {
    const n = ['-n', ns];
    const vx = await attempt([...n, 'link', 'add', 'p-vx', 'type', 'vxlan', 'id', '1', 'dstport', '4789', 'local', '127.0.0.1']);
    const veth = await attempt([...n, 'link', 'add', 'p-a', 'type', 'veth', 'peer', 'name', 'p-b']);
    const vlanDev = veth ?? (await attempt([...n, 'link', 'add', 'link', 'p-a', 'name', 'p-a.5', 'type', 'vlan', 'id', '5']));
    const filtering = await attempt([...n, 'link', 'add', 'p-br', 'type', 'bridge', 'vlan_filtering', '1']);
    const vlanWhy = [vlanDev && `802.1Q VLAN devices: ${vlanDev}`, filtering && `VLAN-filtering bridges: ${filtering}`].filter(Boolean).join('; ');
    return [
      { name: 'vxlan', available: !vx, reason: vx ? `VXLAN devices: ${vx}` : 'VXLAN devices work' },
      { name: 'vlan', available: !vlanWhy, reason: vlanWhy || '802.1Q devices and VLAN-filtering bridges work' },
    ];
  } finally {
    await attempt(['netns', 'del', ns]);
  }
}

/** The backend to use: the one asked for if it works, else the first that works (vxlan before vlan). */
export function chooseBackend(probes: BackendProbe[], wanted: 'auto' | 'vxlan' | 'vlan'): { backend?: 'vxlan' | 'vlan'; reason: string } {
  const pick = wanted === 'auto' ? probes.find((p) => p.available) : probes.find((p) => p.name === wanted);
  if (!pick) return { reason: `no network backend works here: ${probes.map((p) => `${p.name}: ${p.reason}`).join('; ')}` };
  if (!pick.available) return { reason: `backend ${pick.name} is unavailable: ${pick.reason}` };
  return { backend: pick.name, reason: pick.reason };
}
