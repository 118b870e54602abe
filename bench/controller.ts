/**
 * The controller under load: 10,000 instances on 500 simulated agents (bench/controller-agents.ts:
 * the real agent protocol over mutual TLS, nothing carried out). The controller is a separate
 * `outrig controller` process, as in production, so its CPU is its own.
 *  1. N agents enroll and connect; the controller is stopped, (total − created) instances are
 *     written into its store as running on them (a cluster as it is after a while), and it starts again.
 *  2. `created` instances are created through the API, 32 requests at a time: the time until the
 *     agents have received all their vm.start operations.
 *  3. Store queries per reconcile over that phase (the controller's own counters in /metrics).
 *  4. The controller's CPU while nothing changes for --idle seconds (agents keep heartbeating),
 *     after --quiet seconds of the same (V8's heap shrinking after the creates falls in those).
 * Usage: npm run bench:controller -- [--agents 500] [--instances 10000] [--create 1000] [--idle 60] [--quiet 30] [--heartbeat-ms 10000] [--churn-pct 0] [--quick]
 * --churn-pct: the share of VMs whose guest memory use moves between two sweeps (every 2 s) (0: an idle
 * cluster, where every report repeats the last; busy guests make the controller parse every report
 * and run the memory pools' balloon policy).
 * Last line: create_<created>_s=<s> idle_cpu_pct=<pct> queries_per_reconcile=<n>
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { Host } from '../src/model/host.ts';
import type { Instance } from '../src/model/instance.ts';
import { openStore } from '../src/store/index.ts';
import { adminApi, startControllerProcess, stopDaemon, type Daemon } from '../test/helpers/processes.ts';
import { addImage } from '../test/helpers/controller-fixtures.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { waitUntil } from '../test/helpers/wait.ts';
import { enrollSimulated, runningVm, SimulatedAgent, type Credentials } from './controller-agents.ts';

const { values } = parseArgs({
  options: {
    agents: { type: 'string' },
    instances: { type: 'string' },
    create: { type: 'string' },
    idle: { type: 'string' },
    quiet: { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'churn-pct': { type: 'string' },
    quick: { type: 'boolean', default: false },
  },
});
const quick = values.quick;
const AGENTS = Number(values.agents ?? (quick ? 10 : 500));
const TOTAL = Number(values.instances ?? (quick ? 150 : 10_000));
const CREATE = Number(values.create ?? (quick ? 50 : 1000));
const IDLE_S = Number(values.idle ?? (quick ? 3 : 60));
const QUIET_S = Number(values.quiet ?? (quick ? 0 : 30));
const HEARTBEAT_MS = Number(values['heartbeat-ms'] ?? 10_000);
const CHURN_PCT = Number(values['churn-pct'] ?? 0);
if (!(CHURN_PCT >= 0 && CHURN_PCT <= 100)) throw new Error('--churn-pct must be a percentage (0-100)');
for (const [k, v] of Object.entries({ AGENTS, TOTAL, CREATE, IDLE_S, HEARTBEAT_MS }))
  if (!Number.isInteger(v) || v < 1) throw new Error(`${k.toLowerCase()} must be a positive whole number`);
if (!Number.isInteger(QUIET_S) || QUIET_S < 0) throw new Error('--quiet must be a whole number of seconds');
if (CREATE > TOTAL) throw new Error('--create must not be more than --instances');

const say = (m: string) => process.stderr.write(`${m}\n`);

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** The controller's user and system CPU seconds so far (/proc: clock ticks of 1/100 s). */
function cpuTimes(pid: number): { user: number; sys: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
}

interface Counters {
  reconciles: number;
  queries: number;
  /** V8's collections per kind (major, minor, incremental, weakcb): how many and the seconds they took. */
  gc: Map<string, { runs: number; seconds: number }>;
  heapUsedBytes: number;
  /** Per kind: runs and seconds spent in them. */
  kinds: Map<string, { runs: number; seconds: number }>;
  /** The event loop's worst delay since the last read of /metrics (prom-client resets it on each read). */
  lagMaxS: number;
}

async function counters(url: string, token: string, ca: string): Promise<Counters> {
  const { httpsRequest } = await import('../src/common/https.ts');
  const r = await httpsRequest(`${url}/metrics`, { tls: { ca }, headers: { authorization: `Bearer ${token}` } });
  const text = r.body.toString();
  const series = (name: string) => [...text.matchAll(new RegExp(`^${name}(?:\\{kind="([^"]*)"\\}|\\{[^}]*\\})? (\\S+)$`, 'gm'))];
  const sum = (name: string) => series(name).reduce((n, m) => n + Number(m[2]), 0);
  const kinds = new Map<string, { runs: number; seconds: number }>();
  for (const m of series('outrig_reconciles_total')) if (m[1]) kinds.set(m[1], { runs: Number(m[2]), seconds: 0 });
  for (const m of series('outrig_reconcile_seconds_total')) if (m[1] && kinds.has(m[1])) kinds.get(m[1])!.seconds = Number(m[2]);
  const gc = new Map<string, { runs: number; seconds: number }>();
  for (const m of series('outrig_controller_nodejs_gc_duration_seconds_count')) if (m[1]) gc.set(m[1], { runs: Number(m[2]), seconds: 0 });
  for (const m of series('outrig_controller_nodejs_gc_duration_seconds_sum')) if (m[1] && gc.has(m[1])) gc.get(m[1])!.seconds = Number(m[2]);
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    reconciles: sum('outrig_reconciles_total'),
    queries: sum('outrig_store_queries_total'),
    kinds,
    gc,
    heapUsedBytes: gauge('outrig_controller_nodejs_heap_size_used_bytes'),
    lagMaxS: gauge('outrig_controller_nodejs_eventloop_lag_max_seconds'),
  };
}

/** Runs per kind between two readings, and the time they took: "instance 950 (0.21 ms each)". */
function perKind(a: Counters['kinds'], b: Counters['kinds']): string {
  const parts: string[] = [];
  for (const [kind, x] of b) {
    const runs = x.runs - (a.get(kind)?.runs ?? 0);
    const s = x.seconds - (a.get(kind)?.seconds ?? 0);
    if (runs > 0) parts.push(`${kind} ${runs} (${((s / runs) * 1000).toFixed(2)} ms each)`);
  }
  return parts.join(', ') || 'none';
}

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  const work = tempDir('outrig-bench-controller-');
  const dataDir = join(work.path, 'controller');
  const port = await freePort();
  const env: Record<string, string> = { OUTRIG_DATA: work.path, OUTRIG_LOG_LEVEL: 'warn' };
  const args = [
    '--listen',
    `127.0.0.1:${port}`,
    '--heartbeat-ms',
    String(HEARTBEAT_MS),
    '--max-connections-per-address',
    '100000',
    '--max-connections',
    '100000',
    // Every simulated agent discovers from 127.0.0.1 (over HTTPS, /v1/discover): the per-source limit is lifted, UDP stays on loopback.
    '--discovery-rate',
    '1000000',
    '--discovery-address',
    '127.0.0.1',
    '--discovery-port',
    '0',
  ];
  const log = pino({ level: 'silent' });
  let ctl: Daemon & { url: string } = await startControllerProcess(dataDir, args, env);
  const agents: SimulatedAgent[] = [];
  let starts = 0;
  try {
    const api = adminApi(work.path, ctl.url);
    const ca = readFileSync(join(work.path, 'ca.crt'), 'utf8');
    const token = readFileSync(join(work.path, 'admin-token'), 'utf8').trim();

    say(`enrolling ${AGENTS} simulated agents`);
    const creds: Credentials[] = [];
    const ids = Array.from({ length: AGENTS }, (_, i) => `sim-${String(i).padStart(4, '0')}`);
    await pool(ids, 16, async (hostId) => {
      const { token: t } = await api.post<{ token: string }>('/v1/enrollment-rules', { name: `r-${hostId}`, kind: 'token' });
      creds.push(await enrollSimulated(ctl.url, ca, hostId, t, log));
    });

    // A cluster as it is after a while: the instances already there are written into the store, running on the hosts.
    await stopDaemon(ctl);
    const store = await openStore({ kind: 'sqlite', path: join(dataDir, 'outrig.db') });
    await addImage(store, 'sim');
    const existing = TOTAL - CREATE;
    const placed = new Map<string, string[]>();
    for (let i = 0; i < existing; i++) {
      const host = creds[i % creds.length]!.hostId;
      const inst: Instance = await store.instances.create({
        name: `old-${i}`,
        spec: { image: 'sim', vcpus: 1, memoryMiB: 64, tenant: 'default', powerState: 'running', forwardPorts: [], restartSeq: 0 },
        status: { phase: 'running', conditions: [], hostId: host, hostName: host, network: { forwards: [] }, observedGeneration: 1 },
      });
      placed.set(host, [...(placed.get(host) ?? []), inst.id]);
    }
    await store.close();
    for (const c of creds) {
      const a = new SimulatedAgent(ctl.url, c, () => starts++, CHURN_PCT / 100);
      for (const id of placed.get(c.hostId) ?? []) a.vms.set(id, runningVm(id, 1, 0));
      agents.push(a);
    }

    say(`restarting the controller with ${existing} instances; connecting the agents`);
    ctl = await startControllerProcess(dataDir, args, env);
    await pool(agents, 32, (a) => a.connect());
    const settle = async (what: string) => {
      let last = -1;
      await waitUntil(
        what,
        async () => {
          const c = await counters(ctl.url, token, ca);
          const still = c.reconciles === last;
          last = c.reconciles;
          return still;
        },
        600_000,
        quick ? 1000 : 3000, // settled: no reconcile between two reads this far apart
      );
    };
    await waitUntil(
      'every host ready',
      async () => (await api.get<{ items: Host[] }>('/v1/hosts')).items.filter((h) => h.status.phase === 'ready').length === AGENTS,
      600_000,
      1000,
    );
    await settle('the controller to settle after its restart');

    say(`creating ${CREATE} instances through the API`);
    const before = await counters(ctl.url, token, ca);
    starts = 0;
    const t0 = performance.now();
    // The API's responsiveness while the creates run: a /metrics read every second, its time and the event loop's worst lag.
    const probes: { ms: number; lagS: number }[] = [];
    const probe = setInterval(() => {
      const a = performance.now();
      counters(ctl.url, token, ca).then(
        (c) => probes.push({ ms: performance.now() - a, lagS: c.lagMaxS }),
        (e: Error) => say(`probe at ${((a - t0) / 1000).toFixed(1)} s failed: ${e.message}`),
      );
    }, 1000);
    await pool(
      Array.from({ length: CREATE }, (_, i) => i),
      32,
      async (i) => {
        await api.post('/v1/instances', { name: `new-${i}`, image: 'sim', vcpus: 1, memoryMiB: 64 });
      },
    );
    await waitUntil(`${CREATE} vm.start operations to reach the agents`, () => starts >= CREATE, 1_800_000, 100);
    const createS = (performance.now() - t0) / 1000;
    clearInterval(probe);
    const sorted = probes.map((p) => p.ms).sort((a, b) => a - b);
    say(
      `API during the creates: ${probes.length} reads of /metrics answered in ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} ms (median), ` +
        `${sorted.at(-1)?.toFixed(0)} ms at most; the controller's event loop lagged ${Math.max(0, ...probes.map((p) => p.lagS)).toFixed(2)} s at most`,
    );
    await settle('the controller to settle after the creates');
    const after = await counters(ctl.url, token, ca);
    const perReconcile = (after.queries - before.queries) / Math.max(1, after.reconciles - before.reconciles);
    say(`create: ${createS.toFixed(1)} s; ${after.reconciles - before.reconciles} reconciles, ${after.queries - before.queries} queries`);
    say(`create reconciles: ${perKind(before.kinds, after.kinds)}`);

    // After a burst of work V8 shrinks its heap with a few full collections once allocation slows:
    // the creates' cost, not the idle controller's, so the window starts after a quiet spell (measured too).
    const q0 = cpuTimes(ctl.proc.pid!);
    const qt = performance.now();
    await new Promise((r) => setTimeout(r, QUIET_S * 1000));
    const q1 = cpuTimes(ctl.proc.pid!);
    if (QUIET_S > 0)
      say(`quiet for ${QUIET_S} s first: ${(((q1.user - q0.user + q1.sys - q0.sys) / ((performance.now() - qt) / 1000)) * 100).toFixed(2)}% CPU`);
    say(`idle for ${IDLE_S} s`);
    // The counters are read outside the measured window: a /metrics read costs the controller a pass over every resource.
    const i0 = await counters(ctl.url, token, ca);
    const cpu0 = cpuTimes(ctl.proc.pid!);
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_S * 1000));
    const cpu1 = cpuTimes(ctl.proc.pid!);
    const pct = (x: number) => (x / ((performance.now() - w0) / 1000)) * 100;
    const idleCpu = pct(cpu1.user - cpu0.user + cpu1.sys - cpu0.sys);
    say(`idle CPU: ${pct(cpu1.user - cpu0.user).toFixed(2)}% user, ${pct(cpu1.sys - cpu0.sys).toFixed(2)}% system`);
    const i1 = await counters(ctl.url, token, ca);
    say(`idle: ${i1.reconciles - i0.reconciles} reconciles and ${i1.queries - i0.queries} queries in ${IDLE_S} s (the /metrics reads themselves included)`);
    say(`idle reconciles: ${perKind(i0.kinds, i1.kinds)}`);
    say(`idle garbage collection: ${perKind(i0.gc, i1.gc)}; heap in use ${(i1.heapUsedBytes / 2 ** 20).toFixed(0)} MiB`);
    console.log(`agents=${AGENTS} instances=${TOTAL} heartbeat_ms=${HEARTBEAT_MS} churn_pct=${CHURN_PCT}`);
    console.log(`create_${CREATE}_s=${createS.toFixed(2)} idle_cpu_pct=${idleCpu.toFixed(2)} queries_per_reconcile=${perReconcile.toFixed(2)}`);
  } catch (e) {
    say(`the controller's last output:\n${ctl.output().slice(-3000)}`);
    throw e;
  } finally {
    for (const a of agents) a.close();
    await stopDaemon(ctl);
    work.remove();
  }
}

main().then(
  () => process.exit(0),
  (e: Error) => {
    console.error(e.stack ?? e.message);
    process.exit(1);
  },
);
