/**
 * bench:launch — time from `POST /v1/instances` to the guest's ready marker, beside the same guest
 * started by a plain qemu-system-x86_64 command line on the same accelerator (the floor).
 * Runs alternate (Outrig, QEMU, Outrig, ...) so machine noise hits both alike; reports medians and
 * their ratio. Usage: npm run bench:launch [-- --runs N | --quick]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { watchForMarker } from '../src/agent/file-tail.ts';
import { freePort } from '../src/agent/ports.ts';
import type { ApiClient } from '../src/cli/client.ts';
import { registerImage } from '../src/cli/commands/image.ts';
import { buildTestGuest, cpuModelFor, findProcessesWith, type Accel } from '../src/hypervisor/index.ts';
import type { Instance } from '../src/model/instance.ts';
import { adminApi, bootstrapToken, spawnOutrig, startControllerProcess, stopDaemon } from '../test/helpers/processes.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { waitUntil } from '../test/helpers/wait.ts';

const runsArg = process.argv.indexOf('--runs');
// --quick: one run each, a smoke test that the benchmark still works (npm test runs it).
const runs = process.argv.includes('--quick') ? 1 : runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10;
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive whole number');
const MARKER = 'OUTRIG-GUEST-READY';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function outrigLaunch(api: ApiClient, name: string): Promise<number> {
  const t0 = performance.now();
  const created = await api.post<Instance>('/v1/instances', { name, image: 'test', vcpus: 1, memoryMiB: 256 });
  // Follow the console through the API (controller <- agent) until the marker: what a user sees.
  const elapsed = await waitUntil(
    'console stream',
    async () => {
      // Through the API client: the cluster's CA and the admin token (a bare fetch trusts neither).
      const res = await api.raw('GET', `/v1/instances/${created.id}/console?follow=true`);
      if (!res.ok || !res.body) return undefined;
      let text = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += Buffer.from(chunk).toString('latin1');
        if (text.includes(MARKER)) {
          const t = performance.now() - t0;
          await res.body.cancel().catch(() => undefined);
          return t;
        }
      }
      return undefined;
    },
    120_000,
    5,
  );
  await api.delete(`/v1/instances/${created.id}?force=true`);
  await waitUntil('instance deleted', async () => !(await api.find(`/v1/instances/${created.id}`)), 60_000, 50);
  return elapsed;
}

async function qemuLaunch(dir: string, imgDir: string, accel: Accel, i: number): Promise<number> {
  const vm = join(dir, `plain-${i}`);
  mkdirSync(vm, { recursive: true });
  const serial = join(vm, 'serial.log');
  writeFileSync(serial, '');
  const port = await freePort('127.0.0.1');
  const args = [
    '-machine',
    `q35,accel=${accel}`,
    '-cpu',
    cpuModelFor(accel),
    '-smp',
    '1',
    '-m',
    '256M',
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    join(imgDir, 'vmlinuz'),
    '-initrd',
    join(imgDir, 'initrd.img'),
    '-append',
    'console=ttyS0 quiet panic=-1 outrig.name=plain',
    '-serial',
    `file:${serial}`,
    '-netdev',
    `user,id=n0,hostfwd=tcp:127.0.0.1:${port}-:80`,
    '-device',
    'virtio-net-pci,netdev=n0,romfile=',
    '-device',
    'virtio-balloon-pci',
    '-qmp',
    `unix:${join(vm, 'qmp.sock')},server=on,wait=off`,
    '-daemonize',
    '-pidfile',
    join(vm, 'qemu.pid'),
  ];
  const t0 = performance.now();
  let seen = 0;
  const tail = watchForMarker(serial, 0, MARKER, () => (seen = performance.now() - t0));
  const p = spawn('qemu-system-x86_64', args, { stdio: 'ignore' });
  await new Promise((r) => p.once('exit', r));
  await waitUntil('plain QEMU marker', () => seen > 0, 120_000, 5);
  tail.stop();
  for (const pid of await findProcessesWith(vm)) process.kill(pid, 'SIGKILL');
  return seen;
}

async function main(): Promise<void> {
  const work = tempDir('outrig-bench-');
  const env = { OUTRIG_DATA: work.path, OUTRIG_LOG_LEVEL: 'warn' };
  const port = await freePort('127.0.0.1');
  const ctl = await startControllerProcess(join(work.path, 'controller'), ['--listen', `127.0.0.1:${port}`], env);
  const api = adminApi(work.path, ctl.url);
  const token = await bootstrapToken(api);
  const agent = spawnOutrig(['agent', '--controller', ctl.url, '--data', join(work.path, 'agent'), '--name', 'bench'], {
    ...env,
    OUTRIG_BOOTSTRAP_TOKEN: token,
  });
  try {
    const host = await waitUntil(
      'host ready',
      async () => {
        const h = await api.find<{ status: { phase: string; inventory?: { accel: Accel } } }>('/v1/hosts/bench');
        return h?.status.phase === 'ready' ? h : undefined;
      },
      60_000,
    );
    const accel = host.status.inventory!.accel;
    const imgDir = join(work.path, 'image');
    await registerImage(api, imgDir, await buildTestGuest({ outDir: imgDir }));

    // One unmeasured launch each warms the page cache and the agent's image cache.
    await outrigLaunch(api, 'warmup');
    await qemuLaunch(work.path, imgDir, accel, 0);

    const outrig: number[] = [];
    const plain: number[] = [];
    for (let i = 1; i <= runs; i++) {
      outrig.push(await outrigLaunch(api, `bench${i}`));
      plain.push(await qemuLaunch(work.path, imgDir, accel, i));
      process.stderr.write(`run ${i}/${runs}: outrig ${(outrig.at(-1)! / 1000).toFixed(3)} s, qemu ${(plain.at(-1)! / 1000).toFixed(3)} s\n`);
    }
    const mo = median(outrig);
    const mq = median(plain);
    const ratio = mo / mq;
    const result = {
      date: new Date().toISOString(),
      accel,
      runs,
      outrigMedianS: +(mo / 1000).toFixed(3),
      qemuMedianS: +(mq / 1000).toFixed(3),
      outrigMinMaxS: [Math.min(...outrig) / 1000, Math.max(...outrig) / 1000].map((x) => +x.toFixed(3)),
      qemuMinMaxS: [Math.min(...plain) / 1000, Math.max(...plain) / 1000].map((x) => +x.toFixed(3)),
      ratio: +ratio.toFixed(3),
    };
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    writeFileSync(new URL(`./results/launch-${result.date.replace(/[:.]/g, '-')}.json`, import.meta.url), JSON.stringify(result, null, 2) + '\n');
    process.stderr.write(`\naccelerator ${accel}, ${runs} runs each\n`);
    process.stderr.write(`outrig: median ${result.outrigMedianS} s (min ${result.outrigMinMaxS[0]}, max ${result.outrigMinMaxS[1]})\n`);
    process.stderr.write(`qemu:   median ${result.qemuMedianS} s (min ${result.qemuMinMaxS[0]}, max ${result.qemuMinMaxS[1]})\n`);
    process.stdout.write(`launch_vs_qemu=${result.ratio}\n`);
  } finally {
    await stopDaemon(agent);
    await stopDaemon(ctl);
    for (const pid of await findProcessesWith(work.path)) process.kill(pid, 'SIGKILL');
    work.remove();
  }
}

await main();
