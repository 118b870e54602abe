import type { Command } from 'commander';
import type { Snapshot, Volume } from '../../model/volume.ts';
import type { FieldFlags } from '../api-errors.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';
import { collect, parseLabels } from '../parse.ts';
import { waitFor, waitOptions, type WaitFlags } from '../wait.ts';
import { parseSize } from './disk.ts';

const vpath = (ref: string) => `/v1/volumes/${encodeURIComponent(ref)}`;
const spath = (ref: string) => `/v1/snapshots/${encodeURIComponent(ref)}`;

/** A snapshot reference: `VOLUME/SNAPSHOT`, a snapshot id, or a name only one volume has; `fromVolume` names the volume apart. */
function snapshotRef(ref: string, fromVolume?: string): string {
  if (fromVolume === undefined) return ref;
  if (ref.includes('/')) throw new CliError(`give the volume once: '${ref}' already names one, and --from-volume ${fromVolume} too`, 2);
  return `${fromVolume}/${ref}`;
}

/** Body fields of volume requests, and the flags that fill them. */
const CREATE_FIELDS: FieldFlags = {
  name: 'NAME',
  sizeBytes: { flag: '--size', unit: 'bytes' },
  blockSize: { flag: '--block-size', unit: 'bytes' },
  tenant: '--tenant',
  host: '--host',
  forInstance: '--for',
  'source.snapshot': '--from-snapshot',
  'source.image': '--image',
};

function gib(n: number | undefined): string {
  if (n === undefined) return '-';
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(n % 1024 ** 3 ? 1 : 0)}G` : `${Math.round(n / 1024 ** 2)}M`;
}

function describe(v: Volume | undefined, name: string): string {
  if (!v) return `volume ${name} is gone`;
  const where = v.status.hostName ? ` on ${v.status.hostName}` : '';
  return `volume ${v.name}: ${v.status.phase}${where}${v.status.message ? ` (${v.status.message})` : ''}`;
}

/** What keeps going on the controller when the CLI stops waiting (Ctrl-C, timeout), and how to follow or undo it. */
function stillRunning(name: string, doing: string, x: Volume | undefined, undo?: string): string {
  if (!x) return `volume ${name} is gone`;
  const state = ` (${x.status.phase}${x.status.message ? `: ${x.status.message}` : ''})`;
  return `volume ${name} is still ${doing}${state}; follow with \`outrig volume show ${name}\`${undo ? `, ${undo}` : ''}`;
}

async function waitVolume(
  ctx: ReturnType<typeof contextOf>,
  v: Volume,
  flags: WaitFlags,
  done: (v: Volume | undefined) => boolean,
  doing: string,
  undo?: string,
): Promise<Volume | undefined> {
  if (!flags.wait) return v;
  return waitFor<Volume>({
    poll: () => ctx.api.find<Volume>(vpath(v.id)),
    done,
    fail: (x) => (x?.status.phase === 'failed' ? `volume ${v.name} failed: ${x.status.message ?? 'see outrig volume show'}` : undefined),
    describe: (x) => describe(x, v.name),
    timeoutMs: flags.timeout * 1000,
    quiet: ctx.json,
    interrupted: (x) => stillRunning(v.name, doing, x, undo),
  });
}

const ready = (v: Volume | undefined) => !!v && (v.status.phase === 'available' || v.status.phase === 'in-use');

export function volumeCommands(program: Command): void {
  const vol = program.command('volume').description('thin volumes served by each host, with snapshots and clones');

  waitOptions(
    vol
      .command('create <name>')
      .description('create a volume (empty, or a clone of a snapshot or a disk image)')
      .option('--size <size>', 'virtual size, e.g. 10G (default for clones: the source size)', parseSize)
      .option('--tenant <tenant>', 'tenant that owns it', 'default')
      .option('--from-snapshot <snapshot>', 'clone this snapshot (VOLUME/SNAPSHOT, or its name if only one volume has it)')
      .option('--image <image>', 'clone this disk image')
      .option('--host <host>', 'create it on this host')
      .option('--for <instance>', 'create it on the host of this instance, to attach it there')
      .option('--wait-for-room', 'if no host has disk room for it now, keep it pending until one has (default: refuse it at once, saying why)')
      .option('--block-size <size>', 'allocation block size (default 64K)', parseSize)
      .option('--label <key=value>', 'label (repeatable)', collect, []),
  ).action(
    async (
      name: string,
      o: {
        size?: number;
        tenant: string;
        fromSnapshot?: string;
        image?: string;
        host?: string;
        for?: string;
        blockSize?: number;
        label: string[];
        waitForRoom?: boolean;
      } & WaitFlags,
      cmd: Command,
    ) => {
      const ctx = contextOf(cmd);
      const source = o.fromSnapshot ? { snapshot: o.fromSnapshot } : o.image ? { image: o.image } : undefined;
      const body = {
        name,
        sizeBytes: o.size,
        tenant: o.tenant,
        source,
        host: o.host,
        forInstance: o.for,
        blockSize: o.blockSize,
        labels: parseLabels(o.label),
        waitForRoom: o.waitForRoom || undefined,
      };
      const v = await ctx.api.post<Volume>('/v1/volumes', body, CREATE_FIELDS);
      const final = await waitVolume(ctx, v, o, ready, 'being created', `cancel with \`outrig volume delete ${v.name}\``);
      if (ctx.json) return printJson(final);
      process.stdout.write(`${describe(final, name)}\n`);
    },
  );

  vol
    .command('list')
    .description('list volumes')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: Volume[] }>('/v1/volumes');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'PHASE', 'HOST', 'SIZE', 'USED', 'ATTACHED TO', 'SOURCE', 'AGE'],
        items.map((v) => [
          v.name,
          v.id,
          v.status.phase,
          v.status.hostName ?? '-',
          gib(v.spec.sizeBytes),
          gib(v.status.usedBytes),
          v.spec.attachedTo ?? v.spec.ownedBy ?? '-',
          v.spec.source ? Object.entries(v.spec.source).map(([k, x]) => `${k} ${x}`)[0]! : '-',
          age(v.createdAt),
        ]),
      );
    });

  vol
    .command('show <volume>')
    .description('show a volume and its snapshots')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const v = await api.get<Volume>(vpath(ref));
      const snaps = (await api.get<{ items: Snapshot[] }>('/v1/snapshots')).items.filter((s) => s.spec.volume === v.id);
      if (json) return printJson({ ...v, snapshots: snaps });
      printDetails({
        name: v.name,
        id: v.id,
        phase: v.status.phase,
        message: v.status.message,
        host: v.status.hostName,
        tenant: v.spec.tenant,
        size: gib(v.spec.sizeBytes),
        used: gib(v.status.usedBytes),
        attachedTo: v.spec.attachedTo,
        pluggedInto: v.status.attachedTo,
        ownedBy: v.spec.ownedBy,
        source: v.spec.source,
        snapshots: snaps.map((s) => ({ name: s.name, id: s.id, phase: s.status.phase, createdAt: s.createdAt })),
        lastOperation: v.status.lastOp,
        labels: v.labels,
        createdAt: v.createdAt,
      });
    });

  waitOptions(vol.command('attach <volume> <instance>').description('attach a volume to an instance (hot-plugged if it runs)')).action(
    async (ref: string, instance: string, o: WaitFlags, cmd: Command) => {
      const ctx = contextOf(cmd);
      const v = await ctx.api.post<Volume>(`${vpath(ref)}/attach`, { instance });
      const final = await waitVolume(
        ctx,
        v,
        o,
        (x) => !!x && x.status.attachedTo === x.spec.attachedTo && x.status.phase === 'in-use',
        `being attached to ${instance}`,
        `undo with \`outrig volume detach ${v.name}\``,
      );
      if (ctx.json) return printJson(final);
      process.stdout.write(`volume ${v.name} attached to ${instance}\n`);
    },
  );

  waitOptions(vol.command('detach <volume>').description('detach a volume from its instance')).action(async (ref: string, o: WaitFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const v = await ctx.api.post<Volume>(`${vpath(ref)}/detach`);
    const final = await waitVolume(ctx, v, o, (x) => !!x && !x.status.attachedTo && x.status.phase === 'available', 'being detached');
    if (ctx.json) return printJson(final);
    process.stdout.write(`volume ${v.name} detached\n`);
  });

  waitOptions(
    vol
      .command('resize <volume>')
      .description('grow a volume (an attached volume shows its new size to the guest the next time it is plugged in)')
      .requiredOption('--size <size>', 'new size, e.g. 20G', parseSize),
  ).action(async (ref: string, o: { size: number } & WaitFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const v = await ctx.api.post<Volume>(`${vpath(ref)}/resize`, { sizeBytes: o.size }, { sizeBytes: { flag: '--size', unit: 'bytes' } });
    const final = await waitVolume(ctx, v, o, (x) => !!x && (x.status.sizeBytes ?? 0) >= o.size, 'being resized');
    if (ctx.json) return printJson(final);
    process.stdout.write(`volume ${v.name} is ${gib(final?.status.sizeBytes)}\n`);
  });

  waitOptions(vol.command('snapshot <volume> <name>').description('take a copy-on-write snapshot of a volume')).action(
    async (ref: string, name: string, o: WaitFlags, cmd: Command) => {
      const ctx = contextOf(cmd);
      const s = await ctx.api.post<Snapshot>(`${vpath(ref)}/snapshots`, { name }, { name: 'NAME' });
      const final = o.wait
        ? await waitFor<Snapshot>({
            poll: () => ctx.api.find<Snapshot>(spath(s.id)),
            done: (x) => x?.status.phase === 'ready',
            fail: (x) => (x?.status.phase === 'failed' ? `snapshot ${name} failed: ${x.status.message}` : undefined),
            describe: (x) => `snapshot ${name}: ${x?.status.phase ?? 'gone'}`,
            timeoutMs: o.timeout * 1000,
            quiet: ctx.json,
            interrupted: (x) =>
              `snapshot ${name} is still being taken (${x?.status.phase ?? 'gone'}); follow with \`outrig volume show ${ref}\`, cancel with \`outrig volume delete-snapshot ${name}\``,
          })
        : s;
      if (ctx.json) return printJson(final);
      process.stdout.write(`snapshot ${name} of volume ${ref}: ${final?.status.phase}\n`);
    },
  );

  waitOptions(
    vol
      .command('clone <snapshot> <name>')
      .description('make a writable volume from a snapshot (space shared until written); SNAPSHOT is VOLUME/SNAPSHOT, or its name if only one volume has it')
      .option('--from-volume <volume>', 'the volume whose snapshot it is')
      .option('--size <size>', 'grow the clone to this size', parseSize),
  ).action(async (snap: string, name: string, o: { size?: number; fromVolume?: string } & WaitFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const v = await ctx.api.post<Volume>(
      `${spath(snapshotRef(snap, o.fromVolume))}/clone`,
      { name, sizeBytes: o.size },
      { name: 'NAME', sizeBytes: { flag: '--size', unit: 'bytes' } },
    );
    const final = await waitVolume(ctx, v, o, ready, 'being cloned', `cancel with \`outrig volume delete ${v.name}\``);
    if (ctx.json) return printJson(final);
    process.stdout.write(`${describe(final, name)}\n`);
  });

  vol
    .command('snapshots')
    .description('list snapshots')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: Snapshot[] }>('/v1/snapshots');
      if (json) return printJson(items);
      const volumes = new Map((await api.get<{ items: Volume[] }>('/v1/volumes')).items.map((v) => [v.id, v.name]));
      printTable(
        ['VOLUME', 'NAME', 'ID', 'PHASE', 'SIZE', 'AGE'],
        items.map((s) => [volumes.get(s.spec.volume) ?? s.spec.volume, s.name, s.id, s.status.phase, gib(s.status.sizeBytes), age(s.createdAt)]),
      );
    });

  waitOptions(
    vol
      .command('delete-snapshot <snapshot>')
      .description('delete a snapshot (its clones must be gone); SNAPSHOT is VOLUME/SNAPSHOT, or its name if only one volume has it')
      .option('--from-volume <volume>', 'the volume whose snapshot it is'),
  ).action(async (ref: string, o: { fromVolume?: string } & WaitFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const s = await ctx.api.delete<Snapshot>(spath(snapshotRef(ref, o.fromVolume)));
    if (o.wait)
      await waitFor<Snapshot>({
        poll: () => ctx.api.find<Snapshot>(spath(s.id)),
        done: (x) => !x,
        describe: (x) => `snapshot ${s.name}: ${x?.status.phase ?? 'deleted'}`,
        timeoutMs: o.timeout * 1000,
        quiet: ctx.json,
        interrupted: () => `snapshot ${s.name} is still being deleted; follow with \`outrig volume snapshots\``,
      });
    if (ctx.json) return printJson({ id: s.id, name: s.name, deleted: o.wait });
    process.stdout.write(`snapshot ${s.name} ${o.wait ? 'deleted' : 'is being deleted'}\n`);
  });

  waitOptions(
    vol
      .command('delete <volume>')
      .description('delete a volume (detached; one with snapshots needs --recursive)')
      .option('--recursive', 'delete its snapshots with it'),
  ).action(async (ref: string, o: { recursive?: boolean } & WaitFlags, cmd: Command) => {
    const ctx = contextOf(cmd);
    const v = await ctx.api.delete<Volume>(`${vpath(ref)}${o.recursive ? '?recursive=true' : ''}`);
    if (o.wait)
      await waitFor<Volume>({
        poll: () => ctx.api.find<Volume>(vpath(v.id)),
        done: (x) => !x,
        describe: (x) => describe(x, v.name),
        timeoutMs: o.timeout * 1000,
        quiet: ctx.json,
        interrupted: (x) => stillRunning(v.name, 'being deleted', x),
      });
    if (ctx.json) return printJson({ id: v.id, name: v.name, deleted: o.wait });
    process.stdout.write(`volume ${v.name} ${o.wait ? 'deleted' : 'is being deleted'}\n`);
  });
}
