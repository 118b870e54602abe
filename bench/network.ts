/**
 * bench:network — guest-to-guest TCP throughput and latency between two hosts on one Outrig network
 * (traffic through each host's bridge, its firewall and VXLAN over the underlay), beside two plain
 * QEMU guests joined the same way by hand (the floor), in one run. Each "host" is a network
 * namespace this benchmark makes; the guests are the test guest (TCG here) with the same NIC set
 * (a restricted user-mode NIC, then a virtio-net on the tap, MTU 1450) and the same CPU model.
 *  - Outrig: a controller and two agents as `outrig` processes in their own namespaces, a network,
 *    a server instance on h2 and a client on h1 (placed by cordoning the other host); the client
 *    fetches a 64 MiB file (8 MiB with --quick) from the server's web server three times (wget) and pings it 50 times.
 *    Results are read from the client's serial log on its host, as the floor's are.
 *  - Floor: two namespaces joined by a veth (the underlay), in each a bridge, a tap and a VXLAN
 *    device with a static flood entry for the other, no filtering; the same kernel and initramfs.
 * Pairs alternate (Outrig, floor, Outrig, ...) for `--rounds` rounds (default 3); the table has
 * medians with their spread. Ends with `hosts=2 throughput_vs_floor=<ratio> latency_vs_floor=<ratio>`
 * (latency: floor ÷ Outrig, so higher is better for both).
 *
 * Usage: npm run bench:network [-- --rounds N | --quick]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTestGuest, cpuModelFor } from '../src/hypervisor/index.ts';
import type { Instance } from '../src/model/instance.ts';
import { createLan } from '../test/helpers/netns.ts';
import { NetnsCluster } from '../test/helpers/netns-cluster.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { waitUntil } from '../test/helpers/wait.ts';

const roundsArg = process.argv.indexOf('--rounds');
// --quick: one round, a smoke test that the benchmark still works (npm test runs it).
const rounds = process.argv.includes('--quick') ? 1 : roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 3;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive whole number');
/** The file the client fetches; --quick's is small, to check the path works, not to measure it. */
const MIB = process.argv.includes('--quick') ? 8 : 64;

interface Result {
  /** MB/s of each of the three fetches. */
  mbps: number[];
  pingMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The client guest's console: three timed fetches and the ping summary. */
function parse(consoleText: string): Result | undefined {
  if (!consoleText.includes('OUTRIG-NETBENCH done')) return undefined;
  const mbps = [...consoleText.matchAll(/OUTRIG-NETBENCH tcp bytes=(\d+) start=([\d.]+) end=([\d.]+)/g)].map(
    (m) => Number(m[1]) / 1e6 / Math.max(0.01, Number(m[3]) - Number(m[2])),
  );
  const ping = /OUTRIG-NETBENCH ping round-trip min\/avg\/max = [\d.]+\/([\d.]+)\/[\d.]+ ms/.exec(consoleText);
  if (mbps.length !== 3 || !ping)
    throw new Error(
      `unexpected benchmark output:\n${consoleText
        .split('\n')
        .filter((l) => l.includes('NETBENCH'))
        .join('\n')}`,
    );
  return { mbps, pingMs: Number(ping[1]) };
}

const dir = tempDir('outrig-bench-net-');
const lan = createLan(['ctl', 'h1', 'h2']);
const floorTag = lan.switchNs.replace(/-sw$/, '');
const floorNs = [`${floorTag}-fh1`, `${floorTag}-fh2`] as const;
const cluster = new NetnsCluster(lan, dir.path);
const cli = (...args: string[]) => cluster.ok(...args);

const createOn = (host: string, name: string, kernelArgs: string) =>
  cluster.createOn<Instance>(host, name, ['--image', 'test', '--network', 'bench', '--kernel-args', kernelArgs]);

async function outrigPair(round: number): Promise<Result> {
  const srv = await createOn('h2', `srv${round}`, `outrig.netbench=serve outrig.netbench_mib=${MIB}`);
  const addr = srv.spec.nics![0]!.address;
  const client = await createOn('h1', `cli${round}`, `outrig.netbench=${addr} outrig.netbench_mib=${MIB}`);
  if (srv.status.hostName === client.status.hostName) throw new Error(`both guests landed on ${srv.status.hostName}: the benchmark must cross hosts`);
  // The serial log on the host, read like the floor's (a CLI process a second would load the CPU the guests run on).
  const log = cluster.serialLogPath('h1', client.id);
  const r = await waitUntil('the Outrig pair to finish', () => parse(existsSync(log) ? readFileSync(log, 'latin1') : ''), 600_000, 1000);
  for (const i of [srv, client]) await cli('instance', 'delete', i.name, '--force');
  return r;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function floorPair(round: number, image: { kernel: string; initrd: string; cmdline: string }): Promise<Result> {
  const procs: ChildProcess[] = [];
  const guest = (ns: string, name: string, tap: string, mac: string, addr: string, bench: string) => {
    const log = join(dir.path, `floor-${round}-${name}.log`);
    writeFileSync(log, '');
    const args = [
      'netns',
      'exec',
      ns,
      'qemu-system-x86_64',
      '-machine',
      'q35,accel=tcg',
      '-cpu',
      cpuModelFor('tcg'),
      '-m',
      '256',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      `${image.cmdline} outrig.name=${name} outrig.nic1=${mac},${addr}/24 outrig.netbench=${bench} outrig.netbench_mib=${MIB}`,
      // The NIC set Outrig gives a guest: the restricted management NIC first, then the network's.
      '-netdev',
      'user,id=net0,restrict=on',
      '-device',
      `virtio-net-pci,netdev=net0,mac=52:54:00:3d:00:${name === 'fsrv' ? '02' : '03'},romfile=`,
      '-netdev',
      `tap,id=n1,ifname=${tap},script=no,downscript=no`,
      '-device',
      `virtio-net-pci,netdev=n1,mac=${mac},host_mtu=1450,romfile=`,
      '-serial',
      `file:${log}`,
    ];
    procs.push(spawn('ip', args, { stdio: 'ignore' }));
    return log;
  };
  try {
    guest(floorNs[1], 'fsrv', 'ft0', '0a:58:0a:3d:00:02', '10.61.0.2', 'serve');
    const clientLog = guest(floorNs[0], 'fcli', 'ft0', '0a:58:0a:3d:00:03', '10.61.0.3', '10.61.0.2');
    return await waitUntil('the floor pair to finish', () => parse(existsSync(clientLog) ? readFileSync(clientLog, 'latin1') : ''), 600_000, 1000);
  } finally {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  }
}

/** The floor's two hosts: an underlay veth, and in each a bridge with a tap and a VXLAN device pointing at the other. */
function makeFloor(): void {
  const under = ['10.62.0.1', '10.62.0.2'];
  for (const ns of floorNs) ip('netns', 'add', ns);
  ip('-n', floorNs[0], 'link', 'add', 'fu', 'type', 'veth', 'peer', 'name', 'fu', 'netns', floorNs[1]);
  floorNs.forEach((ns, i) => {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'addr', 'add', `${under[i]}/24`, 'dev', 'fu');
    ip('-n', ns, 'link', 'set', 'fu', 'up');
    ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', ns, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', '42', 'local', under[i]!, 'dstport', '4789', 'nolearning');
    ip('-n', ns, 'link', 'set', 'vx0', 'master', 'br0', 'up');
    execFileSync('bridge', ['-n', ns, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx0', 'dst', under[1 - i]!], { stdio: ['ignore', 'ignore', 'pipe'] });
    ip('-n', ns, 'tuntap', 'add', 'dev', 'ft0', 'mode', 'tap');
    ip('-n', ns, 'link', 'set', 'ft0', 'master', 'br0', 'up');
    ip('-n', ns, 'link', 'set', 'br0', 'up');
  });
}

// Interrupted: still leave no namespace, process or file behind.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

try {
  makeFloor();
  // Outrig: a controller and two agents, a network. The controller's default heartbeat (2 s), as users run it.
  await cluster.startHosts(['h1', 'h2'], 2000);
  await cli('network', 'create', 'bench', '--subnet', '10.60.0.0/24', '--gateway', '10.60.0.1');
  const imgDir = join(dir.path, 'floor-image');
  const built = await buildTestGuest({ outDir: imgDir });
  const image = { kernel: join(imgDir, built.files.kernel.name), initrd: join(imgDir, built.files.initrd.name), cmdline: built.cmdline };

  const outrig: Result[] = [];
  const floor: Result[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ['outrig', 'floor'] : ['floor', 'outrig'];
    for (const which of order) {
      const res = which === 'outrig' ? await outrigPair(r) : await floorPair(r, image);
      (which === 'outrig' ? outrig : floor).push(res);
      process.stderr.write(`round ${r + 1}/${rounds} ${which}: ${res.mbps.map((x) => x.toFixed(1)).join(' / ')} MB/s, ping ${res.pingMs} ms\n`);
    }
  }
  const tputs = (rs: Result[]) => rs.map((x) => median(x.mbps));
  const lats = (rs: Result[]) => rs.map((x) => x.pingMs);
  const spread = (xs: number[], d: number) => `${Math.min(...xs).toFixed(d)}-${Math.max(...xs).toFixed(d)}`;
  const o = { t: median(tputs(outrig)), l: median(lats(outrig)) };
  const f = { t: median(tputs(floor)), l: median(lats(floor)) };
  process.stdout.write(
    `\n| median of ${rounds} rounds (spread), two hosts over VXLAN | plain QEMU, hand-made bridges and VXLAN (floor) | Outrig network | ratio |\n|---|---|---|---|\n`,
  );
  process.stdout.write(
    `| TCP throughput, ${MIB} MiB over HTTP (MB/s) | ${f.t.toFixed(1)} (${spread(tputs(floor), 1)}) | ${o.t.toFixed(1)} (${spread(tputs(outrig), 1)}) | ${(o.t / f.t).toFixed(2)} |\n`,
  );
  process.stdout.write(
    `| ping round trip (ms) | ${f.l.toFixed(3)} (${spread(lats(floor), 3)}) | ${o.l.toFixed(3)} (${spread(lats(outrig), 3)}) | ${(f.l / o.l).toFixed(2)} |\n\n`,
  );
  process.stdout.write(`hosts=2 throughput_vs_floor=${(o.t / f.t).toFixed(2)} latency_vs_floor=${(f.l / o.l).toFixed(2)}\n`);
} finally {
  await cleanup();
}

async function cleanup(): Promise<void> {
  await cluster.stop();
  for (const ns of floorNs) {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not made
    }
  }
  dir.remove();
}
