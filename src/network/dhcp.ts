/**
 * The adapter for dhcp-plan.ts: namespaces, veths, isolation flags and dnsmasq processes. The
 * server outlives the agent (as guests do) and its state lives under /run, which goes with a
 * reboot exactly as the namespace and the guests do. Every call reads what is there first.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DHCP_REQUIREMENTS, requireTools } from '../common/system-requirements.ts';
import { bridgeName, dhcpPortName } from './links.ts';
import { readLinks, sh } from './linux.ts';
import { dhcpNames, dnsmasqArgs, hostsFile, parseLeases, withLeases, type DhcpLease, type DhcpServerWanted } from './dhcp-plan.ts';

export const DHCP_RUN_DIR = '/run/outrig/dhcp';

function filesOf(segment: number, tag: string) {
  const dir = join(DHCP_RUN_DIR, dhcpNames(segment, tag).netns);
  return { dir, hosts: join(dir, 'hosts'), leases: join(dir, 'leases.json'), pid: join(dir, 'dnsmasq.pid'), log: join(dir, 'dnsmasq.log') };
}

async function namespaces(): Promise<string[]> {
  const out = await sh('ip', ['-j', 'netns', 'list']);
  return out.trim() ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

/** The running dnsmasq of this server, if any: its pid file names a live dnsmasq using our hosts file. */
function runningPid(f: ReturnType<typeof filesOf>): number | undefined {
  if (!existsSync(f.pid)) return undefined;
  const pid = Number(readFileSync(f.pid, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('dnsmasq') && cmdline.includes(f.hosts) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function readDhcpLeases(segment: number, tag: string): DhcpLease[] {
  const f = filesOf(segment, tag);
  return existsSync(f.leases) ? parseLeases(readFileSync(f.leases, 'utf8')) : [];
}

function writeAtomically(path: string, text: string): void {
  writeFileSync(`${path}.new`, text, { mode: 0o644 });
  renameSync(`${path}.new`, path);
}

/**
 * The server for this segment running, wired to the bridge, answering these leases of the
 * instance (with the other instances' leases kept). Call after the bridge exists.
 */
export async function ensureDhcp(w: DhcpServerWanted, instanceId: string, mine: DhcpLease[]): Promise<void> {
  requireTools(DHCP_REQUIREMENTS, 'DHCP on a network');
  const n = dhcpNames(w.segment, w.tag);
  const f = filesOf(w.segment, w.tag);
  // Readable by dnsmasq after it has dropped to nobody: it re-reads the hosts file on SIGHUP.
  mkdirSync(f.dir, { recursive: true, mode: 0o755 });
  const leases = withLeases(readDhcpLeases(w.segment, w.tag), instanceId, mine);
  writeAtomically(f.hosts, hostsFile(leases));
  writeAtomically(f.leases, JSON.stringify(leases));

  if (!(await namespaces()).includes(n.netns)) await sh('ip', ['netns', 'add', n.netns]);
  const links = await readLinks();
  if (!links.some((l) => l.name === n.port)) {
    await sh('ip', ['netns', 'exec', n.netns, 'ip', 'link', 'del', n.inner]).catch(() => undefined);
    await sh('ip', ['link', 'add', n.port, 'type', 'veth', 'peer', 'name', n.inner, 'netns', n.netns]);
  }
  const inner = await sh('ip', ['-n', n.netns, '-j', 'addr', 'show', 'dev', n.inner]);
  const cidr = `${w.server}/${w.subnet.prefix}`;
  if (!inner.includes(`"local":"${w.server}"`)) await sh('ip', ['-n', n.netns, 'addr', 'add', cidr, 'dev', n.inner]);
  await sh('ip', ['-n', n.netns, 'link', 'set', n.inner, 'mtu', String(w.mtu), 'up']);
  await sh('ip', ['-n', n.netns, 'link', 'set', 'lo', 'up']);
  await sh('ip', ['link', 'set', n.port, 'master', bridgeName(w.segment), 'mtu', String(w.mtu), 'up']);
  await isolate(w.segment);

  const pid = runningPid(f);
  if (pid) {
    process.kill(pid, 'SIGHUP');
    return;
  }
  // dnsmasq daemonises itself (and writes its pid file) once it has bound its socket.
  await new Promise<void>((resolve, reject) => {
    const p = spawn('ip', ['netns', 'exec', n.netns, 'dnsmasq', ...dnsmasqArgs(w, f)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      // The daemon it left behind may hold the pipe: let go of it.
      p.stderr.destroy();
      if (code === 0) resolve();
      else reject(new Error(`dnsmasq for segment ${w.segment} did not start (exit ${code}): ${err.trim()}`));
    });
  });
}

/**
 * The server's port and the bridge's uplinks (the VXLAN device, a dedicated port: anything that is
 * not a guest's tap) are isolated ports: the kernel forwards nothing between them.
 */
export async function isolate(segment: number): Promise<void> {
  const br = bridgeName(segment);
  const links = await readLinks();
  const port = dhcpPortName(segment);
  if (!links.some((l) => l.name === port)) return;
  for (const l of links) {
    if (l.master === br && l.kind !== 'tun') await sh('ip', ['link', 'set', l.name, 'type', 'bridge_slave', 'isolated', 'on']);
  }
}

/** Takes the instance's leases off the segment's server; with none left, the server goes. */
export async function releaseDhcp(segment: number, tag: string, instanceId: string): Promise<void> {
  const f = filesOf(segment, tag);
  if (!existsSync(f.leases)) return;
  const current = readDhcpLeases(segment, tag);
  if (!current.some((l) => l.instanceId === instanceId)) return;
  const leases = withLeases(current, instanceId, []);
  if (leases.length) {
    writeAtomically(f.hosts, hostsFile(leases));
    writeAtomically(f.leases, JSON.stringify(leases));
    const pid = runningPid(f);
    if (pid) process.kill(pid, 'SIGHUP');
    return;
  }
  await stopDhcp(segment, tag);
}

/** Stops the segment's server and removes its namespace (the veth pair goes with it). */
export async function stopDhcp(segment: number, tag: string): Promise<void> {
  const n = dhcpNames(segment, tag);
  const f = filesOf(segment, tag);
  const pid = runningPid(f);
  if (pid) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
  }
  if ((await namespaces()).includes(n.netns)) await sh('ip', ['netns', 'del', n.netns]);
  if ((await readLinks()).some((l) => l.name === n.port)) await sh('ip', ['link', 'del', n.port]);
  rmSync(f.dir, { recursive: true, force: true });
}

/** Segments this agent runs a server for (from the run directory). */
export function dhcpSegments(tag: string): number[] {
  if (!existsSync(DHCP_RUN_DIR)) return [];
  const re = new RegExp(`^outrig-dhcp-(\\d+)-${tag}$`);
  return readdirSync(DHCP_RUN_DIR).flatMap((d) => {
    const m = re.exec(d);
    return m ? [Number(m[1])] : [];
  });
}
