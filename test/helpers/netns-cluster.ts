/**
 * A controller and agents as separate `outrig` processes, each in its own network namespace of a
 * private LAN (netns.ts), with the CLI run in the controller's namespace: the shape of a small
 * multi-host cluster on one machine. Used by the network e2e tests and bench:network.
 */
import { join } from 'node:path';
import { killProcessesUnder } from './cleanup.ts';
import { dhcpSegments, dhcpTag, stopDhcp } from '../../src/network/index.ts';
import type { Lan } from './netns.ts';
import { runInNs } from './netns.ts';
import { stopDaemon, type Daemon } from './processes.ts';
import { waitUntil } from './wait.ts';

export class NetnsCluster {
  readonly daemons: Record<string, Daemon> = {};

  constructor(
    readonly lan: Lan,
    /** Data root: the controller's data, each agent's, the CLI's credentials. */
    readonly dir: string,
  ) {}

  get url(): string {
    return `https://${this.lan.node('ctl').addr}:7440`;
  }

  env(): Record<string, string> {
    return { OUTRIG_DATA: this.dir, OUTRIG_URL: this.url, OUTRIG_LOG_LEVEL: 'info' };
  }

  cli(...args: string[]) {
    return runInNs(this.lan.node('ctl').ns, args, this.env());
  }

  async ok(...args: string[]): Promise<string> {
    const r = await this.cli(...args);
    if (r.code !== 0) throw new Error(`outrig ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  async json<T>(...args: string[]): Promise<T> {
    return JSON.parse(await this.ok(...args, '--json')) as T;
  }

  async startController(heartbeatMs = 500): Promise<void> {
    const ctl = this.lan.outrig(
      'ctl',
      [
        'controller',
        '--listen',
        `${this.lan.node('ctl').addr}:7440`,
        '--data',
        join(this.dir, 'controller'),
        '--no-discovery',
        '--heartbeat-ms',
        String(heartbeatMs),
      ],
      this.env(),
    );
    this.daemons.ctl = ctl;
    await waitUntil(
      'controller to listen',
      () => {
        if (ctl.proc.exitCode !== null) throw new Error(`controller exited: ${ctl.output()}`);
        return ctl.output().includes('outrig controller listening');
      },
      30_000,
    );
  }

  /** Enrolls with a one-time token and starts the agent of node `h` (it joins asynchronously). */
  async startAgent(h: string, extra: string[] = []): Promise<void> {
    const { token } = await this.json<{ token: string }>('cluster', 'enroll-rule', 'add', `agent-${h}`, '--kind', 'token');
    this.daemons[h] = this.lan.outrig(h, this.agentArgs(h, extra), { ...this.env(), OUTRIG_BOOTSTRAP_TOKEN: token });
    this.agentExtras[h] = extra;
  }

  /** Stops node `h`'s agent and starts it again on its stored credentials (its VMs and tables stay); the new daemon. */
  async restartAgent(h: string): Promise<Daemon> {
    await stopDaemon(this.daemons[h]!);
    this.daemons[h] = this.lan.outrig(h, this.agentArgs(h, this.agentExtras[h] ?? []), this.env());
    return this.daemons[h];
  }

  /** Each agent's node and its extra arguments. */
  private readonly agentExtras: Record<string, string[]> = {};

  private agentArgs(h: string, extra: string[]): string[] {
    return ['agent', '--controller', this.url, '--data', join(this.dir, h), '--name', h, '--stop-timeout', '5', ...extra];
  }

  async waitReady(count: number): Promise<void> {
    await waitUntil(
      `${count} hosts ready`,
      async () => (await this.json<{ status: { phase: string } }[]>('host', 'list')).filter((h) => h.status.phase === 'ready').length === count,
      120_000,
      500,
    );
  }

  /** The controller, an agent on each of `hosts`, all ready, and the test image built. */
  async startHosts(hosts: string[], heartbeatMs?: number): Promise<void> {
    await this.startController(heartbeatMs);
    for (const h of hosts) await this.startAgent(h);
    await this.waitReady(hosts.length);
    await this.ok('image', 'build-test');
  }

  /** `outrig instance create NAME ARGS --json` placed on `host`: every other agent's host is cordoned meanwhile. */
  async createOn<T>(host: string, name: string, args: string[]): Promise<T> {
    const others = Object.keys(this.agentExtras).filter((h) => h !== host);
    for (const h of others) await this.ok('host', 'cordon', h);
    try {
      return await this.json<T>('instance', 'create', name, ...args);
    } finally {
      for (const h of others) await this.ok('host', 'uncordon', h);
    }
  }

  /** An instance's serial log on its host (node `h`). */
  serialLogPath(h: string, instanceId: string): string {
    return join(this.dir, h, 'vms', instanceId, 'serial.log');
  }

  async stop(): Promise<void> {
    for (const d of Object.values(this.daemons).reverse()) await stopDaemon(d);
    await killProcessesUnder(this.dir);
    // DHCP servers outlive their agents (as guests do), and live under /run, not this directory.
    for (const h of Object.keys(this.daemons)) {
      const tag = dhcpTag(join(this.dir, h));
      for (const segment of dhcpSegments(tag)) await stopDhcp(segment, tag);
    }
    this.lan.cleanup();
  }
}

/** Rounds of the test guest's reachability probe (outrig.probe): per target, whether ARP and ICMP got answers. */
export function probeRounds(consoleText: string): { round: number; targets: Record<string, { arp: boolean; icmp: boolean }> }[] {
  return [...consoleText.matchAll(/^OUTRIG-PROBE round=(\d+)((?: \S+=arp:\w+,icmp:\w+)+)\s*$/gm)].map((m) => ({
    round: Number(m[1]),
    targets: Object.fromEntries(
      m[2]!
        .trim()
        .split(' ')
        .map((t) => [t.split('=')[0]!, { arp: t.includes('arp:up'), icmp: t.includes('icmp:up') }]),
    ),
  }));
}
