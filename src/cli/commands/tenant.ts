import type { Command } from 'commander';
import type { EntitlementSpec, MemoryPool } from '../../model/memory.ts';
import type { Tenant } from '../../model/tenant.ts';
import type { FieldFlags } from '../api-errors.ts';
import type { ApiClient } from '../client.ts';
import { contextOf } from '../context.ts';
import { CliError } from '../errors.ts';
import { collect, parseLabels, parseMemory, parseNumberIn } from '../parse.ts';
import { age, mib, printDetails, printJson, printTable } from '../output.ts';

interface MemoryFlags {
  pool?: string;
  guaranteed?: number;
  limit?: number;
  prefer?: string;
  pooledShare?: number;
}

function memoryOptions(c: Command): Command {
  return c
    .option('--pool <pool>', 'memory pool the entitlement is for (default: default)')
    .option('--guaranteed <size>', 'memory always available to the tenant in the pool (e.g. 2G)', parseMemory)
    .option('--limit <size>', "the most the tenant's instances may hold in the pool (e.g. 8G)", parseMemory)
    .option('--prefer <tiers>', 'tiers in order of preference, comma-separated (e.g. local,cxl)')
    .option('--pooled-share <share>', 'share of each instance placed on non-local tiers first (0-1)', parseNumberIn('--pooled-share', 0, 1));
}

/** The tenant's entitlements with the one for --pool added or changed by the flags. */
function withEntitlement(cur: EntitlementSpec[], o: MemoryFlags): EntitlementSpec[] {
  const pool = o.pool ?? 'default';
  const old = cur.find((e) => e.pool === pool);
  const guaranteedMiB = o.guaranteed ?? old?.guaranteedMiB ?? 0;
  const limitMiB = o.limit ?? old?.limitMiB;
  if (limitMiB === undefined) throw new CliError(`a new entitlement in pool ${pool} needs --limit`, 2);
  const e: EntitlementSpec = { pool, guaranteedMiB, limitMiB };
  const prefer =
    o.prefer !== undefined
      ? o.prefer
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : old?.prefer;
  if (prefer?.length) e.prefer = prefer;
  const share = o.pooledShare ?? old?.pooledShare;
  if (share !== undefined) e.pooledShare = share;
  return [...cur.filter((x) => x.pool !== pool), e];
}

/** Body fields of tenant requests, and the flags that fill them. */
const TENANT_FIELDS: FieldFlags = {
  name: 'NAME',
  'memory.0.guaranteedMiB': { flag: '--guaranteed', unit: 'MiB' },
  'memory.0.limitMiB': { flag: '--limit', unit: 'MiB' },
  'memory.0.pooledShare': '--pooled-share',
  'memory.0.prefer': '--prefer',
};

async function mustHavePool(api: ApiClient, pool: string): Promise<void> {
  if (!(await api.find<MemoryPool>(`/v1/memory/pools/${encodeURIComponent(pool)}`)))
    throw new CliError(`no such memory pool '${pool}' (--pool; see: outrig memory pool list)`, 2);
}

const hasMemoryFlags = (o: MemoryFlags) => o.guaranteed !== undefined || o.limit !== undefined || o.prefer !== undefined || o.pooledShare !== undefined;

function describe(e: EntitlementSpec): string {
  return `${e.pool}: ${mib(e.guaranteedMiB)} guaranteed, ${mib(e.limitMiB)} limit${e.prefer?.length ? `, prefers ${e.prefer.join('>')}` : ''}${e.pooledShare ? `, ${e.pooledShare * 100}% pooled first` : ''}`;
}

export function tenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('owners of instances, and their share of memory pools');
  tenant
    .command('list')
    .description('list tenants')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: Tenant[] }>('/v1/tenants');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'PHASE', 'MEMORY', 'LABELS', 'AGE'],
        items.map((t) => [
          t.name,
          t.id,
          t.status.phase,
          (t.spec.memory ?? []).map((e) => `${e.pool}:${mib(e.guaranteedMiB)}..${mib(e.limitMiB)}`).join(' ') || 'any pool',
          Object.entries(t.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(',') || '-',
          age(t.createdAt),
        ]),
      );
    });
  memoryOptions(tenant.command('create <name>').description('create a tenant, optionally with a memory entitlement'))
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .action(async (name: string, o: MemoryFlags & { label: string[] }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      // What exists is checked before what is missing: a mistyped pool or a taken name is the answer, not "needs --limit".
      if (await api.find<Tenant>(`/v1/tenants/${encodeURIComponent(name)}`))
        throw new CliError(`tenant '${name}' already exists (see: outrig tenant show ${name}; change its memory with outrig tenant set)`);
      if (o.pool) await mustHavePool(api, o.pool);
      const memory = hasMemoryFlags(o) || o.pool ? withEntitlement([], o) : undefined;
      const t = await api.post<Tenant>('/v1/tenants', { name, labels: parseLabels(o.label), memory }, TENANT_FIELDS);
      if (json) return printJson(t);
      process.stdout.write(`tenant ${t.name} created (${t.id})${memory ? `; memory ${describe(memory[0]!)}` : ''}\n`);
    });
  memoryOptions(tenant.command('set <tenant>').description("change a tenant's memory entitlement in a pool (applies to running instances)"))
    .option('--remove', 'remove the entitlement in --pool')
    .action(async (ref: string, o: MemoryFlags & { remove?: boolean }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const cur = await api.get<Tenant>(`/v1/tenants/${encodeURIComponent(ref)}`);
      if (o.pool && !o.remove) await mustHavePool(api, o.pool);
      let memory: EntitlementSpec[];
      if (o.remove) memory = (cur.spec.memory ?? []).filter((e) => e.pool !== (o.pool ?? 'default'));
      else if (hasMemoryFlags(o)) memory = withEntitlement(cur.spec.memory ?? [], o);
      else throw new CliError('nothing to change: give --guaranteed, --limit, --prefer, --pooled-share or --remove', 2);
      const t = await api.patch<Tenant>(`/v1/tenants/${cur.id}`, { memory }, TENANT_FIELDS);
      if (json) return printJson(t);
      process.stdout.write(`tenant ${t.name} updated; memory ${(t.spec.memory ?? []).map(describe).join('; ') || 'in any pool, no guarantee'}\n`);
    });
  tenant
    .command('show <tenant>')
    .description('show a tenant and its memory in each pool')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const t = await api.get<Tenant>(`/v1/tenants/${encodeURIComponent(ref)}`);
      const { items: pools } = await api.get<{ items: MemoryPool[] }>('/v1/memory/pools');
      const usage = pools.flatMap((p) => p.status.tenants.filter((u) => u.tenant === t.name).map((u) => ({ pool: p.name, ...u })));
      if (json) return printJson({ ...t, memoryUsage: usage });
      printDetails({
        name: t.name,
        id: t.id,
        phase: t.status.phase,
        memory: (t.spec.memory ?? []).map(describe).join('; ') || 'any pool, no guarantee, no limit',
        labels: t.labels,
        createdAt: t.createdAt,
      });
      if (usage.length) {
        process.stdout.write('\n');
        printTable(
          ['POOL', 'GUARANTEED', 'LIMIT', 'INSTANCES', 'COMMITTED', 'BALLOONED', 'HELD'],
          usage.map((u) => [
            u.pool,
            mib(u.guaranteedMiB),
            u.limitMiB < 0 ? 'none' : mib(u.limitMiB),
            u.instances,
            mib(u.committedMiB),
            mib(u.balloonedMiB),
            mib(u.heldMiB),
          ]),
        );
      }
    });
  tenant
    .command('delete <tenant>')
    .description('delete a tenant that has no instances')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const t = await api.get<Tenant>(`/v1/tenants/${encodeURIComponent(ref)}`);
      await api.delete(`/v1/tenants/${t.id}`);
      if (json) return printJson({ id: t.id, name: t.name, deleted: true });
      process.stdout.write(`tenant ${t.name} deleted\n`);
    });
}
