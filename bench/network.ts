/**
 * bench:network — guest-to-guest TCP throughput and latency on one Outrig network, beside two
 * plain QEMU guests on a hand-made Linux bridge (the floor), in one run. Both pairs are the same
 * test guest (TCG here), one host; everything runs in network namespaces this benchmark makes.
 *  - Outrig: controller and agent as `outrig` processes (agent in its own namespace), a network,
 *    two instances with a NIC on it; the client guest fetches a 64 MiB file from the server
 *    guest's web server three times (wget) and pings it 50 times. Results are read from the
 *    client's serial log on the host, as the floor's are.
 *  - Floor: the same kernel and initramfs, `qemu-system-x86_64` with a tap each on one bridge.
 * Pairs alternate (Outrig, floor, Outrig, ...) for `--rounds` rounds (default 3); the table has
 * medians. Ends with `throughput_vs_floor=<ratio> latency_vs_floor=<ratio>` (latency: floor ÷
 * Outrig, so higher is better for both).
 *
 * Usage: npm run bench:network [-- --rounds N | --quick]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildTestGuest } from '../src/hypervisor/index.ts';
import type { Instance } from '../src/model/instance.ts';
import { createLan } from '../test/helpers/netns.ts';
import { NetnsCluster } from '../test/helpers/netns-cluster.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { waitUntil } from '../test/helpers/wait.ts';

const roundsArg = process.argv.indexOf('--rounds');
// --quick: one round, a smoke test that the benchmark still works (npm test runs it).
const rounds = process.argv.includes('--quick') ? 1 : roundsArg > 0 ? Number(process.argv[roundsArg + 1]) : 3;
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive whole number');

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
  const mbps = [...consoleText.matchAll(/OUTRIG-NETBENCH tcp bytes=(\d+) start=([\d.]+) end=([\d.]+)/g)].map((m) => Number(m[1]) / 1e6 / Math.max(0.01, Number(m[3]) - Number(m[2])));
  const ping = /OUTRIG-NETBENCH ping round-trip min\/avg\/max = [\d.]+\/([\d.]+)\/[\d.]+ ms/.exec(consoleText);
  if (mbps.length !== 3 || !ping) throw new Error(`unexpected benchmark output:\n${consoleText.split('\n').filter((l) => l.includes('NETBENCH')).join('\n')}`);
  return { mbps, pingMs: Number(ping[1]) };
}

const dir = tempDir('outrig-bench-net-');
const lan = createLan(['ctl', 'h1']);
const floorNs = `${lan.switchNs.replace(/-sw$/, '')}-floor`;
const cluster = new NetnsCluster(lan, dir.path);
const cli = (...args: string[]) => cluster.ok(...args);

async function outrigPair(round: number): Promise<Result> {
  const srv = JSON.parse(await cli('instance', 'create', `srv${round}`, '--image', 'test', '--network', 'bench', '--kernel-args', 'outrig.netbench=serve', '--json')) as Instance;
  const addr = srv.spec.nics![0]!.address;
  const client = JSON.parse(await cli('instance', 'create', `cli${round}`, '--image', 'test', '--network', 'bench', '--kernel-args', `outrig.netbench=${addr}`, '--json')) as Instance;
  // The serial log on the host, read like the floor's (a CLI process a second would load the CPU the guests run on).
  const log = cluster.serialLogPath('h1', client.id);
  const r = await waitUntil('the Outrig pair to finish', () => parse(existsSync(log) ? readFileSync(log, 'latin1') : ''), 600_000, 1000);
  for (const i of [srv, client]) await cli('instance', 'delete', i.name);
  return r;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function floorPair(round: number, image: { kernel: string; initrd: string; cmdline: string }): Promise<Result> {
  const procs: ChildProcess[] = [];
  const guest = (name: string, tap: string, mac: string, addr: string, bench: string) => {
    const log = join(dir.path, `floor-${round}-${name}.log`);
    writeFileSync(log, '');
    const args = [
      'netns', 'exec', floorNs, 'qemu-system-x86_64',
      '-machine', 'q35,accel=tcg', '-cpu', 'max', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot',
      '-kernel', image.kernel, '-initrd', image.initrd,
      '-append', `${image.cmdline} outrig.name=${name} outrig.nic1=${mac},${addr}/24 outrig.netbench=${bench}`,
      '-netdev', `tap,id=n1,ifname=${tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=n1,mac=${mac},romfile=`,
      '-serial', `file:${log}`,
    ];
    procs.push(spawn('ip', args, { stdio: 'ignore' }));
    return log;
  };
  try {
    guest('fsrv', 'ft0', '0a:58:0a:3d:00:02', '10.61.0.2', 'serve');
    const clientLog = guest('fcli', 'ft1', '0a:58:0a:3d:00:03', '10.61.0.3', '10.61.0.2');
    return await waitUntil('the floor pair to finish', () => parse(existsSync(clientLog) ? readFileSync(clientLog, 'latin1') : ''), 600_000, 1000);
  } finally {
    for (const p of procs) p.kill();
    await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : undefined)));
  }
}

// Interrupted: still leave no namespace, process or file behind.
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));

try {
  // The floor: a bridge and two taps, by hand.
  ip('netns', 'add', floorNs);
  ip('-n', floorNs, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', floorNs, 'link', 'set', 'br0', 'up');
  for (const t of ['ft0', 'ft1']) {
    ip('-n', floorNs, 'tuntap', 'add', 'dev', t, 'mode', 'tap');
    ip('-n', floorNs, 'link', 'set', t, 'master', 'br0', 'up');
  }
  // Outrig: controller and agent, a network.
  // The controller's default heartbeat (2 s), as users run it.
  await cluster.startController(2000);
  await cluster.startAgent('h1');
  await cluster.waitReady(1);
  await cli('image', 'build-test');
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
  const tput = (rs: Result[]) => median(rs.map((x) => median(x.mbps)));
  const lat = (rs: Result[]) => median(rs.map((x) => x.pingMs));
  const o = { t: tput(outrig), l: lat(outrig) };
  const f = { t: tput(floor), l: lat(floor) };
  process.stdout.write(`\n| median of ${rounds} rounds | plain QEMU on a bridge (floor) | Outrig network | ratio |\n|---|---|---|---|\n`);
  process.stdout.write(`| TCP throughput, 64 MiB over HTTP (MB/s) | ${f.t.toFixed(1)} | ${o.t.toFixed(1)} | ${(o.t / f.t).toFixed(2)} |\n`);
  process.stdout.write(`| ping round trip (ms) | ${f.l.toFixed(3)} | ${o.l.toFixed(3)} | ${(f.l / o.l).toFixed(2)} |\n\n`);
  process.stdout.write(`throughput_vs_floor=${(o.t / f.t).toFixed(2)} latency_vs_floor=${(f.l / o.l).toFixed(2)}\n`);
} finally {
  await cleanup();
}

async function cleanup(): Promise<void> {
  await cluster.stop();
  try {
    ip('netns', 'del', floorNs);
  } catch {
    // not made
  }
  dir.remove();
}
