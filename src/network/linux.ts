/**
 * The adapter to the kernel's networking: runs the plans of vxlan-plan.ts with `ip` and `bridge`
 * (iproute2), reading the state again before each plan so every call is idempotent.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseDeviceStates, parseRemoteMacs, planIsolation, planRemoteMacs, type RemoteMac } from './isolation-plan.ts';
import { parseFloodList, parseLinks, tapName, vxlanName, type Link } from './links.ts';
import { planPortSegment } from './port-plan.ts';
import { planSegment, planSegmentRemoval, planTap, planTapRemoval, type Command, type SegmentWanted } from './vxlan-plan.ts';

const exec = promisify(execFile);

export interface Underlay {
  address: string;
  dev: string;
  mtu: number;
}

async function json(cmd: string, args: string[]): Promise<unknown> {
  const { stdout } = await exec(cmd, args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim() ? (JSON.parse(stdout) as unknown) : [];
}

export async function readLinks(): Promise<Link[]> {
  return parseLinks(await json('ip', ['-j', '-d', 'link', 'show']));
}

/** Runs one command; its stdout, or an error naming the command and what it printed. */
export async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    return (await exec(cmd, args)).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${[cmd, ...args].join(' ')} failed: ${(err.stderr ?? err.message).trim()}`, { cause: e });
  }
}

async function run(commands: Command[]): Promise<void> {
  for (const [cmd, ...args] of commands) await sh(cmd!, args);
}

interface AddrInfo {
  ifname: string;
  mtu: number;
  flags?: string[];
  addr_info?: { family: string; local: string; scope: string }[];
}

/**
 * This host's underlay: the given address (which must be on one of its interfaces), else the
 * address of the interface that carries the default route, else the only global IPv4 address.
 */
export function chooseUnderlay(addrs: AddrInfo[], defaultDev: string | undefined, wanted?: string): Underlay | { error: string } {
  const v4 = addrs.flatMap((a) =>
    (a.addr_info ?? []).filter((i) => i.family === 'inet' && i.scope === 'global').map((i) => ({ address: i.local, dev: a.ifname, mtu: a.mtu })),
  );
  if (wanted) return v4.find((u) => u.address === wanted) ?? { error: `underlay address ${wanted} is on none of this host's interfaces` };
  const viaDefault = v4.find((u) => u.dev === defaultDev);
  if (viaDefault) return viaDefault;
  const own = v4.filter((u) => !/^o(br|vx|t)/.test(u.dev));
  if (own.length === 1) return own[0]!;
  return {
    error: own.length
      ? `several global IPv4 addresses and no default route: give one with --underlay (${own.map((u) => u.address).join(', ')})`
      : 'no global IPv4 address for VXLAN to use',
  };
}

export async function findUnderlay(wanted?: string): Promise<Underlay | { error: string }> {
  const addrs = (await json('ip', ['-j', 'addr', 'show'])) as AddrInfo[];
  const routes = (await json('ip', ['-j', 'route', 'show', 'default'])) as { dev?: string }[];
  return chooseUnderlay(addrs, routes[0]?.dev, wanted);
}

export async function ensureSegment(w: SegmentWanted): Promise<void> {
  const links = await readLinks();
  const vx = vxlanName(w.segment);
  const flood = links.some((l) => l.name === vx) ? parseFloodList(await json('bridge', ['-j', 'fdb', 'show', 'dev', vx])) : [];
  await run(planSegment(links, flood, w));
}

export async function ensurePortSegment(segment: number, port: string): Promise<void> {
  await run(planPortSegment(await readLinks(), segment, port));
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(join('/proc/sys', path), 'utf8');
  } catch {
    return undefined;
  }
}

/** No IPv6 and no ARP answers on the segment's bridge and ports, no learning on its VXLAN device (isolation-plan.ts). */
export async function isolateFromHost(segment: number): Promise<void> {
  const links = await readLinks();
  const plan = planIsolation(links, parseDeviceStates(await json('ip', ['-j', '-d', 'addr', 'show']), readSysctl), segment);
  for (const w of plan.writes) {
    await writeFile(join('/proc/sys', w.path), w.value).catch((e: Error) => {
      throw new Error(`writing ${w.value} to /proc/sys/${w.path} failed: ${e.message}`, { cause: e });
    });
  }
  await run(plan.commands);
}

/** The VXLAN device's per-MAC entries: exactly the other hosts' guests the controller named. */
export async function ensureRemoteMacs(segment: number, macs: RemoteMac[]): Promise<void> {
  const vx = vxlanName(segment);
  if (!(await readLinks()).some((l) => l.name === vx)) return;
  await run(planRemoteMacs(parseRemoteMacs(await json('bridge', ['-j', 'fdb', 'show', 'dev', vx])), segment, macs));
}

/** The MTU of an interface (the dedicated port's, for taps on a port-carried network). */
export async function mtuOf(name: string): Promise<number> {
  const l = (await readLinks()).find((x) => x.name === name);
  if (!l) throw new Error(`interface ${name} does not exist`);
  return l.mtu;
}

/** Takes the segment off unless a guest still uses it; `first` runs just before (stopping its DHCP server). */
export async function removeSegment(segment: number, first?: () => Promise<void>): Promise<{ busy?: string }> {
  let plan = planSegmentRemoval(await readLinks(), segment);
  if (!plan.busy && first) {
    await first();
    plan = planSegmentRemoval(await readLinks(), segment);
  }
  await run(plan.commands);
  return { busy: plan.busy };
}

/** A guest's tap on the segment's bridge, with the segment's MTU. */
export async function ensureTap(instanceId: string, index: number, segment: number, mtu: number): Promise<string> {
  const tap = tapName(instanceId, index);
  await run(planTap(await readLinks(), tap, segment, mtu));
  return tap;
}

/** Removes every tap of the instance (any index): after its VM is gone. */
export async function removeTaps(instanceId: string): Promise<void> {
  const links = await readLinks();
  const prefix = tapName(instanceId, 0).slice(0, -1);
  for (const l of links) if (l.name.startsWith(prefix) && l.name.length === prefix.length + 1) await run(planTapRemoval(links, l.name));
}
