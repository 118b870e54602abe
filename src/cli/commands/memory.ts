import type { Command } from 'commander';
import type { MemoryPool, MemoryPoolSpec } from '../../model/memory.ts';
import type { FieldFlags } from '../api-errors.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { mib, printDetails, printJson, printTable } from '../output.ts';
import { collect, parseMemory, parseNumberIn } from '../parse.ts';

type TierSpec = MemoryPoolSpec['tiers'][number];

/** "local", "local:768M", "cxl:pooled:4G", "far:remote:2G@1" -> a tier. */
function parseTier(v: string): TierSpec {
  const m = /^([a-z0-9-]+)(?::(local|remote|pooled))?(?::([0-9]+[MmGg]?))?(?:@([0-9]+))?$/.exec(v.trim());
  if (!m) throw new CliError(`invalid tier '${v}' (NAME[:local|remote|pooled][:SIZE][@NUMA-NODE], e.g. local:768M or cxl:pooled:4G)`, 2);
  const kind = (m[2] ?? (m[1] === 'local' ? 'local' : undefined)) as TierSpec['kind'] | undefined;
  if (!kind) throw new CliError(`tier '${v}' needs a kind: ${m[1]}:local, ${m[1]}:remote or ${m[1]}:pooled`, 2);
  const t: TierSpec = { name: m[1]!, kind };
  if (m[3]) t.capacityMiB = parseMemory(m[3]);
  if (m[4]) t.hostNode = Number(m[4]);
  return t;
}

interface PoolFlags {
  host: string[];
  allHosts?: boolean;
  tier: string[];
  allowUnbacked?: boolean;
  overcommit?: number;
  floorMin?: number;
  floorFraction?: number;
}

/** Body fields of pool requests, and the flags that fill them. */
const POOL_FIELDS: FieldFlags = {
  name: 'NAME',
  hosts: '--host',
  tiers: '--tier',
  maxOvercommit: '--overcommit',
  'floor.minMiB': { flag: '--floor-min', unit: 'MiB' },
  'floor.fraction': '--floor-fraction',
};

function poolOptions(c: Command): Command {
  return c
    .option('--host <host>', 'a host of the pool (repeatable; default: every host no other pool names)', collect, [])
    .option('--tier <tier>', 'NAME[:local|remote|pooled][:SIZE][@NUMA-NODE] (repeatable), e.g. local:768M, cxl:pooled:4G', collect, [])
    .option('--allow-unbacked', "accept tiers larger than the pool's hosts have memory for (memory still to be added)")
    .option('--overcommit <ratio>', 'placement may commit this multiple of capacity; balloons cover the rest (1-4)', parseNumberIn('--overcommit', 1, 4))
    .option('--floor-min <size>', 'no guest is ballooned below this (e.g. 128M)', parseMemory)
    .option('--floor-fraction <share>', 'nor below this share of its size (0-1)', parseNumberIn('--floor-fraction', 0, 1));
}

function floorOf(o: PoolFlags, cur?: MemoryPoolSpec['floor']): MemoryPoolSpec['floor'] {
  if (o.floorMin === undefined && o.floorFraction === undefined) return undefined;
  return { minMiB: o.floorMin ?? cur?.minMiB ?? 128, fraction: o.floorFraction ?? cur?.fraction ?? 0.25 };
}

function sum(p: MemoryPool, k: 'capacityMiB' | 'committedMiB' | 'balloonedMiB' | 'freeMiB'): number {
  return p.status.domains.reduce((n, d) => n + d[k], 0);
}

export function memoryCommands(program: Command): void {
  const memory = program.command('memory').description("memory pools: tiers, capacity, tenants' shares and balloons");
  const pool = memory.command('pool').description('memory pools');
  const path = (ref: string) => `/v1/memory/pools/${encodeURIComponent(ref)}`;

  pool
    .command('list')
    .description('list memory pools with their capacity and use')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: MemoryPool[] }>('/v1/memory/pools');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'HOSTS', 'TIERS', 'OVERCOMMIT', 'CAPACITY', 'COMMITTED', 'BALLOONED', 'FREE', 'PRESSURE'],
        items.map((p) => [
          p.name,
          p.spec.hosts ? p.status.hosts.join(',') || '-' : `${p.status.hosts.length} (all others)`,
          p.spec.tiers.map((t) => t.name).join(','),
          p.spec.maxOvercommit,
          mib(sum(p, 'capacityMiB')),
          mib(sum(p, 'committedMiB')),
          mib(sum(p, 'balloonedMiB')),
          mib(sum(p, 'freeMiB')),
          p.status.conditions.find((c) => c.type === 'Pressure')?.status === 'True' ? 'yes' : 'no',
        ]),
      );
    });

  pool
    .command('show <pool>')
    .description('show a pool: capacity, committed, ballooned and free memory per tier and host, and per tenant')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const p = await api.get<MemoryPool>(path(ref));
      if (json) return printJson(p);
      printDetails({
        name: p.name,
        id: p.id,
        phase: p.status.phase,
        hosts: p.spec.hosts ? p.status.hosts : `${p.status.hosts.join(', ') || 'none'} (every host no other pool names)`,
        tiers: p.spec.tiers
          .map((t) => `${t.name} (${t.kind}${t.capacityMiB ? `, ${mib(t.capacityMiB)}` : ''}${t.hostNode !== undefined ? `, node ${t.hostNode}` : ''})`)
          .join(', '),
        maxOvercommit: p.spec.maxOvercommit,
        floor: p.spec.floor ? `${mib(p.spec.floor.minMiB)} or ${p.spec.floor.fraction * 100}% of a guest` : 'default (128 MiB or 25% of a guest)',
        conditions: p.status.conditions,
        updatedAt: p.status.updatedAt,
      });
      process.stdout.write('\n');
      printTable(
        ['DOMAIN', 'TIER', 'HOST', 'CAPACITY', 'COMMITTED', 'BALLOONED', 'FREE', 'SHORT'],
        p.status.domains.map((d) => [
          d.domain,
          d.tier,
          d.hostName ?? '-',
          mib(d.capacityMiB),
          mib(d.committedMiB),
          mib(d.balloonedMiB),
          mib(d.freeMiB),
          mib(d.shortMiB),
        ]),
      );
      process.stdout.write('\n');
      printTable(
        ['TENANT', 'GUARANTEED', 'LIMIT', 'INSTANCES', 'COMMITTED', 'BALLOONED', 'HELD'],
        p.status.tenants.map((t) => [
          t.tenant,
          mib(t.guaranteedMiB),
          t.limitMiB < 0 ? 'none' : mib(t.limitMiB),
          t.instances,
          mib(t.committedMiB),
          mib(t.balloonedMiB),
          mib(t.heldMiB),
        ]),
      );
    });

  poolOptions(pool.command('create <name>').description('create a memory pool')).action(async (name: string, o: PoolFlags, cmd: Command) => {
    const { api, json } = contextOf(cmd);
    const body = {
      name,
      hosts: o.host.length ? o.host : undefined,
      tiers: o.tier.length ? o.tier.map(parseTier) : [{ name: 'local', kind: 'local' }],
      maxOvercommit: o.overcommit,
      floor: floorOf(o),
      allowUnbacked: o.allowUnbacked,
    };
    const p = await api.post<MemoryPool>('/v1/memory/pools', body, POOL_FIELDS);
    if (json) return printJson(p);
    process.stdout.write(`memory pool ${p.name} created (${p.id})\n`);
  });

  poolOptions(pool.command('set <pool>').description('change a memory pool (running guests follow: balloons move)'))
    .option('--all-hosts', 'the pool takes every host no other pool names')
    .action(async (ref: string, o: PoolFlags, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const cur = await api.get<MemoryPool>(path(ref));
      const body: Record<string, unknown> = {};
      if (o.allHosts) body.hosts = null;
      else if (o.host.length) body.hosts = o.host;
      if (o.tier.length) body.tiers = o.tier.map(parseTier);
      if (o.overcommit !== undefined) body.maxOvercommit = o.overcommit;
      const floor = floorOf(o, cur.spec.floor);
      if (floor) body.floor = floor;
      if (!Object.keys(body).length) throw new CliError('nothing to change: give --host, --all-hosts, --tier, --overcommit or --floor-*', 2);
      if (o.allowUnbacked) body.allowUnbacked = true;
      const p = await api.patch<MemoryPool>(`/v1/memory/pools/${cur.id}`, body, POOL_FIELDS);
      if (json) return printJson(p);
      process.stdout.write(`memory pool ${p.name} updated\n`);
    });

  pool
    .command('delete <pool>')
    .description('delete a memory pool no tenant and no instance uses')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const p = await api.get<MemoryPool>(path(ref));
      await api.delete(`/v1/memory/pools/${p.id}`);
      if (json) return printJson({ id: p.id, name: p.name, deleted: true });
      process.stdout.write(`memory pool ${p.name} deleted\n`);
    });
}
