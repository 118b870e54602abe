/**
 * README.md, walked as a newcomer would: its command blocks in order ("Using it" with memory and
 * backups, the cluster of several servers, networks) against `outrig up`, with the new server of the
 * cluster section in a network namespace of its own (its own hostname, its own data). A documented
 * command that fails, or prints an error, fails this test: the README cannot drift from the code.
 *
 * What a reader fills in by hand is filled here from what the earlier commands printed: the
 * `<placeholders>`. `npx outrig` runs bin/outrig.js, which is what npx resolves it to in a
 * checkout; the paths a reader would use on a server (/backups, /tmp/r, /etc/outrig-token) go to
 * this test's directory instead of the machine's.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { findProcessesWith } from '../../src/hypervisor/process.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { createLan, runInNs, type Lan } from '../helpers/netns.ts';
import { OUTRIG_BIN, spawnOutrig, stopDaemon, type Daemon } from '../helpers/processes.ts';
import { placeholders, readmeCommands, type ReadmeCommand } from '../helpers/readme-blocks.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const SECTIONS = ['Using it', 'A cluster of several servers', 'Networks'];
const NEW_SERVER = 'h1';
/** How the CLI reports an error (`outrig: …`), and what tools and warnings print. */
const ERROR = /^(outrig: |error|warning|npm (warn|error))/im;

const dir = tempDir('outrig-readme-');
let lan: Lan;
const daemons: Daemon[] = [];
const env: Record<string, Record<string, string>> = {
  controller: { OUTRIG_DATA: join(dir.path, 'controller-machine'), OUTRIG_LOG_LEVEL: 'info' },
  'new-server': { OUTRIG_DATA: join(dir.path, 'new-server'), OUTRIG_LOG_LEVEL: 'info' },
};

/** Runs a command line of the README on a machine: the controller's namespace, or the new server's with its own hostname. */
function prefix(machine: ReadmeCommand['machine']): string[] {
  const ns = lan.node(machine === 'controller' ? 'ctl' : NEW_SERVER).ns;
  if (machine === 'controller') return ['ip', 'netns', 'exec', ns];
  return ['ip', 'netns', 'exec', ns, 'unshare', '--uts', 'sh', '-c', `hostname ${NEW_SERVER} && exec "$@"`, 'sh'];
}

function rewrite(line: string): string {
  return line
    .replace(/\bnpx outrig\b/g, `${process.execPath} ${OUTRIG_BIN}`)
    .replaceAll('/backups', join(dir.path, 'backups'))
    .replaceAll('/tmp/r', join(dir.path, 'r'))
    .replaceAll('/etc/outrig-token', join(dir.path, 'outrig-token'));
}

function run(machine: ReadmeCommand['machine'], line: string, timeoutMs = 300_000): Promise<{ code: number | string; out: string; stdout: string }> {
  const p = [...prefix(machine), 'bash', '-c', `set -o pipefail; ${rewrite(line)}`];
  const child = spawn(p[0]!, p.slice(1), { cwd: dir.path, env: { ...process.env, ...env[machine] }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stdout = '';
  child.stdout.on('data', (d) => {
    out += d;
    stdout += d;
  });
  child.stderr.on('data', (d) => (out += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? sig ?? -1, out, stdout });
    }),
  );
}

async function cliJson<T>(...args: string[]): Promise<T> {
  const r = await runInNs(lan.node('ctl').ns, [...args, '--json'], env.controller!);
  if (r.code !== 0) throw new Error(`outrig ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

let lastOutput = '';
/** What a reader copies from earlier output into a `<placeholder>`. */
const fill: Record<string, () => Promise<string>> = {
  'forwarded port': async () => {
    const list = await cliJson<{ name: string; status: { network: { forwards: { guestPort: number; hostPort: number }[] } } }[]>('instance', 'list');
    return String(list.find((i) => i.name === 'web1')!.status.network.forwards.find((f) => f.guestPort === 80)!.hostPort);
  },
  backup: async () => {
    const list = await cliJson<{ items?: { name: string; createdAt: string }[] } | { name: string; createdAt: string }[]>('backup', 'list');
    const items = Array.isArray(list) ? list : (list.items ?? []);
    return items.filter((b) => b.name.startsWith('vm2-')).sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0]!.name;
  },
  token: async () => /bootstrap token \(shown only now\): (\S+)/.exec(lastOutput)![1]!,
  fingerprint: async () => (await cliJson<{ caFingerprint: string }>('cluster', 'info')).caFingerprint,
  host: async () => NEW_SERVER,
};

type Inst = {
  id: string;
  name: string;
  status: {
    phase: string;
    bootedAt?: string;
    network: { forwards: { guestPort: number; hostAddress: string; hostPort: number }[] };
    conditions: { type: string; status: string }[];
  };
};
const agentDir = () => join(env.controller!.OUTRIG_DATA!, 'agent');
const serialLog = (id: string) => {
  const p = join(agentDir(), 'vms', id, 'serial.log');
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
};
const showWeb1 = () => cliJson<Inst>('instance', 'show', 'web1');
let web1: Inst;

/**
 * What must hold after some documented commands, beyond their success: the lifecycle a reader
 * sees (a running guest, its web page, a restart that is a new boot on the same ports, a stop
 * through ACPI, a delete that leaves nothing).
 */
const checks: [RegExp, (stdout: string) => Promise<void>][] = [
  [
    /^npx outrig host list\b/,
    async () => {
      const hosts = await cliJson<{ name: string; status: { phase: string; inventory: { kvm: { reason: string }; cpu: { count: number } } } }[]>(
        'host',
        'list',
      );
      assert.ok(
        hosts.length >= 1 && hosts.every((h) => h.status.phase === 'ready' && h.status.inventory.cpu.count >= 1 && h.status.inventory.kvm.reason.length > 0),
        JSON.stringify(hosts),
      );
    },
  ],
  [
    /^npx outrig instance create web1\b/,
    async (out) => {
      assert.match(out, /instance web1: running on /);
      web1 = await showWeb1();
      assert.equal(web1.status.network.forwards.length, 1);
      assert.equal(web1.status.network.forwards[0]!.hostAddress, '127.0.0.1');
    },
  ],
  [/^curl /, async (out) => assert.equal(out.trim(), 'outrig test guest web1')],
  [
    /^npx outrig instance stop web1/,
    async () => {
      assert.deepEqual(await findProcessesWith(web1.id), []);
      assert.match(serialLog(web1.id), /power button pressed, powering off/);
    },
  ],
  [
    /^npx outrig instance start web1/,
    async () => {
      const i = await showWeb1();
      assert.equal(i.status.conditions.find((c) => c.type === 'GuestReady')?.status, 'True');
      web1 = i;
    },
  ],
  [
    /^npx outrig instance restart web1/,
    async () => {
      const i = await showWeb1();
      assert.equal(i.status.phase, 'running');
      assert.notEqual(i.status.bootedAt, web1.status.bootedAt);
      assert.deepEqual(i.status.network.forwards, web1.status.network.forwards);
      assert.equal((await findProcessesWith(web1.id)).length, 1);
    },
  ],
  [
    /^npx outrig instance create app1\b/,
    async (out) => {
      // Two hosts now: a 127.0.0.1 forward is only good on the instance's own host, and the CLI says which.
      assert.match(out, /127\.0\.0\.1 forwards reach the guest only from host \S+ \(an agent's --forward-address/);
    },
  ],
  [
    /prune --keep-daily 7$/,
    async () => {
      // restic's grouping: the files of /etc and /home and the disk are two sources, each keeps its newest of the day.
      const r = await runInNs(lan.node('ctl').ns, ['backup', '--repo', join(dir.path, 'backups'), 'list', '--json'], env.controller!);
      const snaps = JSON.parse(r.stdout) as { source?: string; paths?: string[] }[];
      assert.equal(snaps.length, 2, r.stdout);
    },
  ],
  [
    /^npx outrig instance delete web1/,
    async () => {
      assert.deepEqual(await findProcessesWith(web1.id), []);
      assert.equal(existsSync(join(agentDir(), 'vms', web1.id)), false);
      const left = readdirSync(dir.path, { recursive: true, withFileTypes: true }).filter((d) => d.name.includes(web1.id));
      assert.deepEqual(
        left.map((d) => join(d.parentPath, d.name)),
        [],
      );
      const show = await runInNs(lan.node('ctl').ns, ['instance', 'show', 'web1'], env.controller!);
      assert.equal(show.code, 1);
      assert.match(show.stderr, /Instance 'web1' not found/);
    },
  ],
];

before(async () => {
  lan = createLan(['ctl', NEW_SERVER]);
  // Servers have a default route: the agent runs VXLAN over the address of its interface.
  for (const n of ['ctl', NEW_SERVER]) execFileSync('ip', ['-n', lan.node(n).ns, 'route', 'add', 'default', 'dev', 'eth0']);
});

after(async () => {
  for (const d of daemons.reverse()) await stopDaemon(d, 90_000).catch(() => undefined);
  await killProcessesUnder(dir.path);
  lan?.cleanup();
  if (!process.env.KEEP) dir.remove();
});

test("README.md's commands, in order, against outrig up and a second server", async (t) => {
  const cmds = readmeCommands(README, SECTIONS);
  // "With `outrig up` running": the one the cluster section documents, so that other servers can join.
  const upLine = cmds.find((c) => /^npx outrig up\b/.test(c.line));
  assert.ok(upLine, 'the README documents how to run outrig up for a cluster');
  const up = spawnOutrig(rewrite(upLine.line).split(' ').slice(2), env.controller!, [...prefix('controller'), process.execPath, OUTRIG_BIN]);
  daemons.push(up);
  await waitUntil(
    'outrig up to be up',
    () => {
      if (up.proc.exitCode !== null) throw new Error(`outrig up exited: ${up.output()}`);
      return up.output().includes('Outrig is up');
    },
    300_000,
    200,
  );
  assert.doesNotMatch(up.output(), ERROR);

  const ran: string[] = [];
  for (const c of cmds) {
    if (c === upLine) continue;
    let line: string = c.line;
    for (const p of placeholders(line)) {
      const f = fill[p];
      assert.ok(f, `the README has a placeholder <${p}> this walk does not know how to fill`);
      line = line.replaceAll(`<${p}>`, await f());
    }
    const exp = /^export (\w+)=(\S+)$/.exec(line);
    if (exp) {
      env.controller![exp[1]!] = exp[2]!;
      continue;
    }
    if (/^npx outrig agent\b/.test(line)) {
      // A daemon: it runs on, and the reader moves on once it says it joined.
      const agent = spawnOutrig(rewrite(line).split(/\s+/).slice(2), env[c.machine]!, [...prefix(c.machine), process.execPath, OUTRIG_BIN]);
      daemons.push(agent);
      await waitUntil(
        `the new server's agent to join (${line})`,
        () => {
          if (agent.proc.exitCode !== null) throw new Error(`the agent exited: ${agent.output()}`);
          return / joined https:\/\//.test(agent.output());
        },
        120_000,
        200,
      );
      ran.push(line);
      continue;
    }
    if (/ --follow\b/.test(line)) {
      // Followed until the guest's ready marker shows, then left with Ctrl-C, as a reader does.
      const p = [...prefix(c.machine), 'bash', '-c', rewrite(line)];
      const child = spawn(p[0]!, p.slice(1), { cwd: dir.path, env: { ...process.env, ...env[c.machine] }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      try {
        const image = await cliJson<{ spec: { readyMarker: string } }>('image', 'show', 'test');
        await waitUntil(`${line} to show the guest's ready marker`, () => out.includes(image.spec.readyMarker), 60_000, 200).catch((e: Error) => {
          throw new Error(`${e.message}; it showed: ${JSON.stringify(out.slice(-2000))}`);
        });
      } finally {
        child.kill('SIGINT');
      }
      ran.push(line);
      continue;
    }
    const t0 = Date.now();
    const r = await run(c.machine, line);
    t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s  ${line}`);
    lastOutput = r.out;
    assert.equal(r.code, 0, `README command failed (exit ${r.code}): ${line}\n${r.out}`);
    assert.doesNotMatch(r.out, ERROR, `README command printed an error: ${line}\n${r.out}`);
    for (const [when, check] of checks) if (when.test(c.line)) await check(r.stdout);
    ran.push(line);
  }
  assert.ok(ran.length >= 30, `ran ${ran.length} commands`);

  // Where the walk leaves things is what the README said it would.
  const hosts = await cliJson<{ items?: { name: string; status: { phase: string } }[] } | { name: string; status: { phase: string } }[]>('host', 'list');
  const hostList = Array.isArray(hosts) ? hosts : (hosts.items ?? []);
  assert.equal(hostList.find((h) => h.name === NEW_SERVER)?.status.phase, 'ready', JSON.stringify(hostList.map((h) => [h.name, h.status.phase])));
  const instances = await cliJson<{ name: string; status: { phase: string } }[]>('instance', 'list');
  assert.deepEqual(Object.fromEntries(instances.map((i) => [i.name, i.status.phase])), { vm2: 'stopped', a1: 'running', app1: 'running' });
});
