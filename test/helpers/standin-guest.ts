/**
 * A network namespace standing in for a guest: it sits behind the real tap the agent made for an
 * instance (whose QEMU has been stopped), joined to it by a relay that does what QEMU does with a
 * tap (hostile-guest.py relay), so everything it sends enters the bridge exactly as a guest's
 * frames do, through the host's firewall. Its kernel is a full guest stack (addresses, ARP, DHCP
 * with busybox's udhcpc), and it can send any raw frame. Every namespace and process made here is
 * removed by `cleanup()`, which the tests call even after a failure.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { markers } from './frames.ts';
import { waitUntil } from './wait.ts';

const TOOL = fileURLToPath(new URL('./hostile-guest.py', import.meta.url));
const exec = promisify(execFile);

/** A long-running tool process in a namespace, its output lines collected. */
export class ToolProcess {
  readonly lines: string[] = [];
  private rest = '';

  constructor(readonly proc: ChildProcess) {
    proc.stdout!.on('data', (d: Buffer) => {
      const text = this.rest + d.toString();
      const parts = text.split('\n');
      this.rest = parts.pop()!;
      this.lines.push(...parts);
    });
  }

  /** Waits for the tool's "ready" line; throws with its output if it died first. */
  async ready(what: string): Promise<this> {
    let err = '';
    this.proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    await waitUntil(
      what,
      () => {
        if (this.proc.exitCode !== null) throw new Error(`${what}: exited ${this.proc.exitCode}: ${err}`);
        return this.lines.includes('ready');
      },
      15_000,
      20,
    );
    return this;
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.pid) process.kill(this.proc.pid, 'SIGKILL');
  }
}

const processes: ToolProcess[] = [];
const namespaces: string[] = [];

export function tool(ns: string, args: string[]): ToolProcess {
  const p = new ToolProcess(spawn('ip', ['netns', 'exec', ns, 'python3', TOOL, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  processes.push(p);
  return p;
}

/** A short tool command in a namespace; its output. */
export async function runTool(ns: string, args: string[]): Promise<string> {
  return (await exec('ip', ['netns', 'exec', ns, 'python3', TOOL, ...args])).stdout;
}

export function inNs(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Frames a namespace's interface received, parsed on demand. */
export class Sniffer {
  constructor(private readonly t: ToolProcess) {}

  frames(): Buffer[] {
    return this.t.lines.filter((l) => /^[0-9a-f]+$/.test(l)).map((l) => Buffer.from(l, 'hex'));
  }

  markers(): string[] {
    return this.frames().flatMap(markers);
  }

  /** Waits until a frame with this marker has arrived. */
  async saw(marker: string): Promise<void> {
    await waitUntil(`a frame marked ${marker}`, () => this.markers().includes(marker), 30_000, 20);
  }
}

export class StandIn {
  readonly sniffer: Sniffer;

  private constructor(
    readonly ns: string,
    readonly mac: string,
    sniff: ToolProcess,
  ) {
    this.sniffer = new Sniffer(sniff);
  }

  /** A namespace `ns` behind tap `tap` of host namespace `hostNs`, with the instance's MAC and the network's MTU. */
  static async attach(hostNs: string, tap: string, ns: string, mac: string, mtu: number): Promise<StandIn> {
    execFileSync('ip', ['netns', 'add', ns]);
    namespaces.push(ns);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
    await tool(hostNs, ['relay', tap, ns]).ready(`the relay of ${tap}`);
    inNs(ns, 'ip', 'link', 'set', 'eth0', 'address', mac, 'mtu', String(mtu), 'up');
    // A guest's kernel speaks IPv6 on its NIC unless told otherwise; this one does too.
    return new StandIn(ns, mac, await tool(ns, ['sniff', 'eth0']).ready(`the sniffer in ${ns}`));
  }

  /** Asks for a lease with busybox's udhcpc (which only reports it here): the address offered. */
  async dhcp(): Promise<string> {
    const r = await exec('ip', ['netns', 'exec', this.ns, 'busybox', 'udhcpc', '-i', 'eth0', '-n', '-q', '-f', '-t', '10', '-T', '1', '-s', '/bin/true']).catch(
      (e: { stdout: string; stderr: string }) => e,
    );
    const m = /lease of (\S+) obtained/.exec(r.stdout + r.stderr);
    if (!m) throw new Error(`no DHCP lease in ${this.ns}: ${r.stdout}${r.stderr}`);
    return m[1]!;
  }

  address(cidr: string): void {
    inNs(this.ns, 'ip', 'addr', 'add', cidr, 'dev', 'eth0');
  }

  send(...frames: Buffer[]): Promise<string> {
    return runTool(this.ns, ['send', 'eth0', ...frames.map((f) => f.toString('hex'))]);
  }
}

/** Kills every tool process and deletes every namespace this module made. */
export function cleanupStandIns(): void {
  for (const p of processes.splice(0)) p.kill();
  for (const ns of namespaces.splice(0)) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
}
