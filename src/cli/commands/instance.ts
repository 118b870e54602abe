import { Option, type Command } from 'commander';
import { isLoopback } from '../../common/route-source.ts';
import { getCondition } from '../../model/conditions.ts';
import type { Instance, StopProgress } from '../../model/instance.ts';
import type { FieldFlags } from '../api-errors.ts';
import { ApiRequestError } from '../client.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { collect, parseIntStrict, parseLabels, parseMemory } from '../parse.ts';
import { parseSize } from './disk.ts';
import { age, mib, printDetails, printJson, printTable } from '../output.ts';
import { waitFor, waitOptions, type WaitFlags } from '../wait.ts';
import { TerminalSanitizer } from '../terminal-safe.ts';

const path = (ref: string) => `/v1/instances/${encodeURIComponent(ref)}`;

function forwardsText(i: Instance): string {
  const f = i.status.network.forwards;
  return f.length ? f.map((x) => `${x.hostAddress}:${x.hostPort}->${x.guestPort}`).join(',') : '-';
}

const isLoopbackForward = (i: Instance) => i.status.network.forwards.some((f) => isLoopback(f.hostAddress));

/** A loopback forward works only on the instance's own host: say which, and how to reach it from elsewhere. */
function loopbackNote(where: string): string {
  return `127.0.0.1 forwards reach the guest only from ${where} (an agent's --forward-address ADDR puts them on an address others reach)`;
}

/** A stop under way, for people: the power button pressed, how long the guest has ignored it, when it is forced off. */
export function stopText(st: StopProgress, now: number): string {
  if (st.method === 'force') return 'powering it off (not waiting for the guest)';
  const left = st.forceAt ? Math.ceil((Date.parse(st.forceAt) - now) / 1000) : undefined;
  const waited = Math.max(0, Math.floor((now - Date.parse(st.since)) / 1000));
  if (left === undefined) return `power button pressed ${waited} s ago, waiting for the guest to shut down`;
  if (left <= 0) return 'guest ignored the power button, forcing it off';
  if (waited < 3) return `power button pressed; forcing off in ${left} s unless the guest shuts down`;
  return `guest ignored the power button for ${waited} s, forcing off in ${left} s`;
}

function describe(i: Instance | undefined, name: string): string {
  if (!i) return `instance ${name} is gone`;
  const ready = getCondition(i.status.conditions, 'GuestReady')?.status === 'True' ? ', guest ready' : '';
  const where = i.status.hostName ? ` on ${i.status.hostName}` : '';
  const stopping = i.status.stopping ? `: ${stopText(i.status.stopping, Date.now())}` : '';
  return `instance ${i.name}: ${i.status.phase}${where}${ready}${stopping}${i.status.message ? ` (${i.status.message})` : ''}`;
}

type Action = 'create' | 'start' | 'stop' | 'restart' | 'delete';

/** What keeps going on the controller when the CLI stops waiting (Ctrl-C, timeout), and how to follow or cancel it. */
export function stillRunning(action: Action, name: string, i: Instance | undefined): string {
  if (!i) return `instance ${name} is gone`;
  const state = ` (${i.status.phase}${i.status.message ? `: ${i.status.message}` : ''})`;
  const follow = `follow with \`outrig instance show ${name}\``;
  switch (action) {
    case 'create':
      // A VM that already boots is deleted only with --force (the API refuses otherwise).
      return `instance ${name} is still being created${state}; ${follow}, cancel with \`outrig instance delete ${name}${['starting', 'running'].includes(i.status.phase) ? ' --force' : ''}\``;
    case 'start':
      return `instance ${name} is still starting${state}; ${follow}, cancel with \`outrig instance stop ${name}\``;
    case 'stop':
      return `instance ${name} is still stopping${state}; ${follow}, or power it off at once with \`outrig instance stop ${name} --force\``;
    case 'restart':
      return `instance ${name} is still restarting${state}; ${follow}, or power it off at once with \`outrig instance restart ${name} --force\``;
    case 'delete':
      return `instance ${name} is still being deleted${state}; ${follow} (a delete cannot be undone)`;
  }
}

async function waitPhase(
  ctx: ReturnType<typeof contextOf>,
  action: Action,
  inst: Instance,
  want: string,
  flags: WaitFlags & { ready?: boolean },
  also: (i: Instance) => boolean = () => true,
): Promise<Instance> {
  if (!flags.wait) return inst;
  const out = await waitFor<Instance>({
    poll: () => ctx.api.find<Instance>(path(inst.id)),
    done: (i) => !!i && i.status.phase === want && (!flags.ready || getCondition(i.status.conditions, 'GuestReady')?.status === 'True') && also(i),
    fail: (i) =>
      !i
        ? `instance ${inst.name} disappeared`
        : i.status.phase === 'failed'
          ? `instance ${i.name} failed: ${i.status.message ?? 'see outrig instance show'}`
          : undefined,
    describe: (i) => describe(i, inst.name),
    timeoutMs: flags.timeout * 1000,
    quiet: ctx.json,
    interrupted: (i) => stillRunning(action, inst.name, i),
  });
  return out!;
}

/** Body fields of `instance create`, and the flags that fill them. */
const CREATE_FIELDS: FieldFlags = {
  name: 'NAME',
  image: '--image',
  bootVolume: '--boot-volume',
  volumes: '--volume',
  rootDiskBytes: { flag: '--root-size', unit: 'bytes' },
  kernelArgs: '--kernel-args',
  readyMarker: '--ready-marker',
  vcpus: '--vcpus',
  memoryMiB: { flag: '--memory', unit: 'MiB' },
  tenant: '--tenant',
  forwardPorts: '--port',
  networks: '--network',
};

export function instanceCommands(program: Command): void {
  const inst = program.command('instance').description('virtual machines');

  waitOptions(
    inst
      .command('create <name>')
      .description('create and start an instance; waits until it runs')
      .option('--image <image>', 'image name or id (see: outrig image list); a disk image boots from a clone of it')
      .option('--boot-volume <volume>', 'boot from this volume instead of an image')
      .option('--volume <volume>', 'attach a volume (repeatable)', collect, [])
      .option('--root-size <size>', 'size of the boot volume made from a disk image (default: the image size)', parseSize)
      .option('--kernel-args <args>', 'extra kernel command line (kernel images)')
      .addOption(new Option('--vcpus <n>', 'virtual CPUs').default(1).argParser(parseIntStrict('--vcpus')))
      .addOption(new Option('--memory <size>', 'memory, MiB or with a unit (512M, 2G)').default(256).argParser(parseMemory))
      .option('--tenant <tenant>', 'tenant that owns the instance', 'default')
      .option('--port <guestPort>', "guest TCP port to forward to the host (repeatable; default: the image's)", collect, [])
      .option('--network <network>', 'put a NIC on this network (repeatable; in order: eth1, eth2, ...)', collect, [])
      .option('--label <key=value>', 'label (repeatable)', collect, [])
      .option('--no-start', 'create it stopped')
      .option('--wait-for-room', 'if no host has room for it now, keep it pending until one has (default: refuse it at once, saying why)')
      .option('--ready-marker <text>', "what the guest prints on its serial console when it is up (default: the image's)")
      .option('--wait-ready', "also wait for the guest's ready marker"),
  ).action(
    async (
      name: string,
      o: {
        image?: string;
        bootVolume?: string;
        volume: string[];
        rootSize?: number;
        kernelArgs?: string;
        readyMarker?: string;
        vcpus: number;
        memory: number;
        tenant: string;
        port: string[];
        network: string[];
        label: string[];
        start: boolean;
        waitReady?: boolean;
        waitForRoom?: boolean;
      } & WaitFlags,
      cmd: Command,
    ) => {
      const ctx = contextOf(cmd);
      if (!o.image === !o.bootVolume) throw new CliError('give --image or --boot-volume (one of them)', 2);
      const body = {
        name,
        image: o.image,
        bootVolume: o.bootVolume,
        volumes: o.volume.length ? o.volume : undefined,
        rootDiskBytes: o.rootSize,
        kernelArgs: o.kernelArgs,
        readyMarker: o.readyMarker,
        vcpus: o.vcpus,
        memoryMiB: o.memory,
        tenant: o.tenant,
        labels: parseLabels(o.label),
        forwardPorts: o.port.length ? o.port.map(parseIntStrict('--port')) : undefined,
        networks: o.network.length ? o.network : undefined,
        start: o.start,
        waitForRoom: o.waitForRoom || undefined,
      };
      const created = await ctx.api.post<Instance>('/v1/instances', body, CREATE_FIELDS);
      const final = await waitPhase(ctx, 'create', created, o.start ? 'running' : 'stopped', { ...o, ready: o.waitReady });
      if (ctx.json) return printJson(final);
      process.stdout.write(`${describe(final, name)}\n`);
      if (final.status.network.forwards.length) process.stdout.write(`forwarded ports: ${forwardsText(final)}\n`);
      if (isLoopbackForward(final) && (await ctx.api.get<{ items: unknown[] }>('/v1/hosts')).items.length > 1)
        process.stdout.write(`${loopbackNote(final.status.hostName ? `host ${final.status.hostName}` : 'its host')}\n`);
      for (const n of final.spec.nics ?? []) process.stdout.write(`network ${n.networkName}: ${n.address}/${n.prefix} (${n.mac})\n`);
      process.stdout.write(`console: outrig instance console ${final.name} --follow\n`);
    },
  );

  inst
    .command('list')
    .description('list instances')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: Instance[] }>('/v1/instances');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'PHASE', 'HOST', 'VCPUS', 'MEMORY', 'IMAGE', 'TENANT', 'FORWARDS', 'AGE'],
        items.map((i) => [
          i.name,
          i.id,
          i.status.phase,
          i.status.hostName ?? '-',
          i.spec.vcpus,
          mib(i.spec.memoryMiB),
          i.spec.image ?? `volume ${i.spec.bootVolume}`,
          i.spec.tenant,
          forwardsText(i),
          age(i.createdAt),
        ]),
      );
      if (items.some(isLoopbackForward) && (await api.get<{ items: unknown[] }>('/v1/hosts')).items.length > 1)
        process.stdout.write(`\n${loopbackNote('its host (HOST)')}\n`);
    });

  inst
    .command('show <instance>')
    .description('show an instance')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const i = await api.get<Instance>(path(ref));
      if (json) return printJson(i);
      printDetails({
        name: i.name,
        id: i.id,
        phase: i.status.phase,
        message: i.status.message,
        host: i.status.hostName,
        tenant: i.spec.tenant,
        image: i.spec.image,
        bootVolume: i.spec.bootVolume,
        kernelArgs: i.spec.kernelArgs,
        vcpus: i.spec.vcpus,
        memory: mib(i.spec.memoryMiB),
        memoryPool: i.status.memory ? `${i.status.memory.pool}: ${i.status.memory.portions.map((p) => `${mib(p.sizeMiB)} ${p.tier}`).join(' + ')}` : undefined,
        balloon: i.status.memory?.balloon
          ? {
              target: mib(i.status.memory.balloon.targetMiB),
              holds: i.status.memory.balloon.actualMiB === undefined ? 'unknown' : mib(i.status.memory.balloon.actualMiB),
              inUse: i.status.memory.balloon.usedMiB === undefined ? 'unknown (no guest statistics yet)' : mib(i.status.memory.balloon.usedMiB),
              why: i.status.memory.balloon.reason ?? 'no pressure: full size',
            }
          : undefined,
        powerState: i.spec.powerState,
        stopping: i.status.stopping ? stopText(i.status.stopping, Date.now()) : undefined,
        accelerator: i.status.accel,
        forwards: i.status.network.forwards,
        nics: i.spec.nics?.map((n) => {
          const on = i.status.network.nics?.find((x) => x.mac === n.mac);
          return `${n.networkName}: ${n.address}/${n.prefix} ${n.mac}${n.gateway ? ` gateway ${n.gateway}` : ''}${on ? ` (${on.mode} ${on.tap ?? on.pciAddress}: ${on.reason})` : ''}`;
        }),
        bootedAt: i.status.bootedAt,
        readyAt: i.status.readyAt,
        generation: `${i.generation} (observed ${i.status.observedGeneration})`,
        lastOperation: i.status.lastOp,
        conditions: i.status.conditions,
        labels: i.labels,
        createdAt: i.createdAt,
      });
    });

  for (const [action, want, help] of [
    ['start', 'running', 'start a stopped instance'],
    ['stop', 'stopped', "stop an instance (ACPI power button, forced off after the agent's stop timeout, 30 s by default)"],
    ['restart', 'running', 'restart an instance (stops it as stop does, then starts it)'],
  ] as const) {
    const c = waitOptions(inst.command(`${action} <instance>`).description(help));
    if (want === 'running') c.option('--wait-ready', "also wait for the guest's ready marker");
    if (action !== 'start')
      c.option('--force', 'power the VM off at once instead of pressing its power button and waiting for the guest (also ends a stop that is waiting)');
    c.action(async (ref: string, o: WaitFlags & { waitReady?: boolean; force?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const before = await ctx.api.get<Instance>(path(ref));
      const after = await ctx.api.post<Instance>(`${path(ref)}/${action}${o.force ? '?force=true' : ''}`);
      // A restart is done once the instance runs a boot newer than the one it had.
      const final = await waitPhase(
        ctx,
        action,
        after,
        want,
        { ...o, ready: o.waitReady },
        (i) => action !== 'restart' || i.status.bootedAt !== before.status.bootedAt,
      );
      if (ctx.json) return printJson(final);
      process.stdout.write(`${describe(final, after.name)}\n`);
    });
  }

  waitOptions(
    inst
      .command('delete <instance>')
      .description('delete an instance and every file of its VM (a running one needs --force)')
      .option('--force', 'delete it even while it runs (its VM is killed)'),
  ).action(async (ref: string, o: { force?: boolean } & WaitFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const i = await ctx.api.delete<Instance>(`${path(ref)}${o.force ? '?force=true' : ''}`);
    if (o.wait) {
      await waitFor<Instance>({
        poll: () => ctx.api.find<Instance>(path(i.id)),
        done: (x) => !x,
        describe: (x) => (x ? describe(x, i.name) : `instance ${i.name} deleted`),
        timeoutMs: o.timeout * 1000,
        quiet: ctx.json,
        interrupted: (x) => stillRunning('delete', i.name, x),
      });
    }
    if (ctx.json) return printJson({ id: i.id, name: i.name, deleted: o.wait });
    if (!o.wait) process.stdout.write(`instance ${i.name} is being deleted\n`);
  });

  inst
    .command('console <instance>')
    .description("print the instance's serial console (guest output: on a terminal, control sequences are shown escaped)")
    .option('-f, --follow', 'keep printing as the guest writes (Ctrl-C to stop)')
    .option('--tail <bytes>', 'start this many bytes before the end (default: the last 256 KiB)', parseIntStrict('--tail'))
    .option('--raw', "write the guest's bytes to the terminal unchanged, control sequences included (only for a guest you trust)")
    .action(async (ref: string, o: { follow?: boolean; tail?: number; raw?: boolean }, cmd: Command) => {
      const { api } = contextOf(cmd);
      const q = new URLSearchParams({ follow: o.follow ? 'true' : 'false' });
      if (o.tail !== undefined) q.set('tail', String(o.tail));
      const res = await api.raw('GET', `${path(ref)}/console?${q}`);
      if (!res.ok || !res.body) {
        const body = (await res.json().catch(() => undefined)) as { error?: { message?: string; code?: string } } | undefined;
        throw new ApiRequestError(res.status, body?.error?.code ?? 'http_error', body?.error?.message ?? `HTTP ${res.status}`);
      }
      // Escaped only for a terminal: a pipe or file gets the bytes as the guest wrote them.
      const safe = process.stdout.isTTY && !o.raw ? new TerminalSanitizer() : undefined;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) process.stdout.write(safe ? safe.push(chunk) : chunk);
      if (safe) process.stdout.write(safe.end());
    });
}
