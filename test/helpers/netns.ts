/**
 * A private LAN of network namespaces for tests: one namespace holds a Linux bridge (the switch),
 * every node gets its own namespace with a veth pair into it and an address on 10.77.0.0/24.
 * Nothing touches the test machine's own namespace; cleanup() deletes every namespace it made.
 */
import { execFileSync } from 'node:child_process';
import { OUTRIG_BIN, runCli, spawnOutrig, type CliResult, type Daemon } from './processes.ts';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface Lan {
  /** Namespace name and address of a node. */
  node(name: string): { ns: string; addr: string };
  /** Runs `outrig ...` as a daemon inside a node's namespace (or the switch's: node 'switch'). */
  outrig(node: string, args: string[], env: Record<string, string>): Daemon;
  /** The switch's namespace. */
  switchNs: string;
  /**
   * A second, dedicated link from a node to the switch (eth1 in the node, `port` in the switch), in
   * no bridge: what an 802.1X-authenticated switch port is before the port controller admits it.
   */
  dedicatedLink(node: string, port: string, ifname?: string): void;
  /**
   * A link shared by several stations in front of switch port `port`: a hub (a bridge that passes
   * 802.1X frames, as unmanaged switches do) with one namespace per station, each with eth0 on it.
   * Returns each station's namespace.
   */
  sharedLink(port: string, stations: string[]): Record<string, string>;
  /** Gives the switch an address on the LAN (for a port controller that talks to the controller). */
  switchAddress(addr: string): void;
  cleanup(): void;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test builds network namespaces and needs root (CI runs as root; run it with sudo)');
}

export function createLan(nodes: string[]): Lan {
  requireRoot();
  const tag = `or${process.pid % 100000}`;
  const sw = `${tag}-sw`;
  const made: string[] = [];
  const addrs = new Map<string, { ns: string; addr: string }>();
  const cleanup = () => {
    for (const ns of made.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
    made.length = 0;
  };
  try {
    ip('netns', 'add', sw);
    made.push(sw);
    ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'br0', 'up');
    nodes.forEach((name, i) => {
      const ns = `${tag}-${name}`;
      const addr = `10.77.0.${i + 1}`;
      ip('netns', 'add', ns);
      made.push(ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      // Created inside the node's namespace, so no interface ever appears in the machine's own.
      ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', sw);
      ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
      ip('-n', ns, 'link', 'set', 'eth0', 'up');
      ip('-n', sw, 'link', 'set', `p${i}`, 'master', 'br0');
      ip('-n', sw, 'link', 'set', `p${i}`, 'up');
      addrs.set(name, { ns, addr });
    });
  } catch (e) {
    cleanup();
    throw e;
  }
  return {
    node(name) {
      const n = addrs.get(name);
      if (!n) throw new Error(`no node ${name}`);
      return n;
    },
    switchNs: sw,
    dedicatedLink(node, port, ifname = 'eth1') {
      const { ns } = this.node(node);
      ip('-n', ns, 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', port, 'netns', sw);
      ip('-n', ns, 'link', 'set', ifname, 'up');
      ip('-n', sw, 'link', 'set', port, 'up');
    },
    sharedLink(port, stations) {
      const hub = `${tag}-hub-${port}`;
      ip('netns', 'add', hub);
      made.push(hub);
      ip('-n', hub, 'link', 'add', 'hub0', 'type', 'bridge', 'group_fwd_mask', '8');
      ip('-n', hub, 'link', 'set', 'hub0', 'up');
      ip('-n', hub, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', port, 'netns', sw);
      ip('-n', hub, 'link', 'set', 'up0', 'master', 'hub0', 'up');
      ip('-n', sw, 'link', 'set', port, 'up');
      return Object.fromEntries(
        stations.map((station, i) => {
          const ns = `${tag}-${station}`;
          ip('netns', 'add', ns);
          made.push(ns);
          ip('-n', ns, 'link', 'set', 'lo', 'up');
          ip('-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `s${i}`, 'netns', hub);
          ip('-n', ns, 'link', 'set', 'eth0', 'up');
          ip('-n', hub, 'link', 'set', `s${i}`, 'master', 'hub0', 'up');
          return [station, ns];
        }),
      );
    },
    switchAddress(addr) {
      ip('-n', sw, 'addr', 'add', `${addr}/24`, 'dev', 'br0');
      ip('-n', sw, 'link', 'set', 'lo', 'up');
    },
    outrig(node, args, env) {
      const ns = node === 'switch' ? sw : this.node(node).ns;
      return spawnOutrig(args, env, ['ip', 'netns', 'exec', ns, process.execPath, OUTRIG_BIN]);
    },
    cleanup,
  };
}

/** Runs a CLI command inside a node's namespace. */
export function runInNs(ns: string, args: string[], env: Record<string, string>): Promise<CliResult> {
  return runCli(args, env, 120_000, ['ip', 'netns', 'exec', ns, process.execPath, OUTRIG_BIN]);
}
