/**
 * Acceptance, pooled memory: two tenants, three real guests, a pool sized so that the third
 * creates pressure. Balloons are read over QMP (query-balloon on each VM's inspection monitor),
 * not from Outrig's own status: the tenant above its guarantee shrinks, the other keeps its
 * guarantee, a lowered limit squeezes running guests, and all grow back when pressure goes.
 *
 * Pool: local tier capped at 768 MiB on the host, a 256 MiB pooled tier, overcommit 1.5.
 * acme (guarantee 256, limit 1024, local only): a1 and a2, 320 MiB each.
 * beta (guarantee 384, limit 512, 25% pooled first): b1, 384 MiB = 288 local + 96 pooled.
 * With b1, local holds 928 MiB of 768: acme is 384 MiB above its guarantee and beta 0, so acme
 * gives the 160 MiB, 80 from each guest: a1 and a2 go to 240 MiB, b1 stays at 384.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { QmpClient } from '../../src/hypervisor/qmp.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { MemoryPool } from '../../src/model/memory.ts';
import { waitUntil } from '../helpers/wait.ts';
import { Cluster } from './cluster.ts';

const MiB = 1024 * 1024;

describe('pooled memory with per-tenant balloons', () => {
  const c = new Cluster();
  before(() => c.up());
  after(() => c.stop());

  const ok = (...args: string[]) => c.ok(...args);
  const inst = (name: string) => c.json<Instance>('instance', 'show', name);
  const pool = () => c.json<MemoryPool>('memory', 'pool', 'show', 'default');
  const ids = new Map<string, string>();

  /** QMP straight to the VM's QEMU, beside the agent's own connection. */
  const qmp = async <T>(name: string, command: string, args?: Record<string, unknown>): Promise<T> => {
    const q = await QmpClient.connect(join(c.agentDir, 'vms', ids.get(name)!, 'qmp-inspect.sock'));
    try {
      return await q.execute<T>(command, args);
    } finally {
      q.close();
    }
  };
  const balloonMiB = async (name: string) => Math.round((await qmp<{ actual: number }>(name, 'query-balloon')).actual / MiB);
  const balloons = async () =>
    Object.fromEntries(await Promise.all(['a1', 'a2', 'b1'].filter((n) => ids.has(n)).map(async (n) => [n, await balloonMiB(n)] as const)));
  /** Waits until every named guest holds its expected size (the balloon driver moves in steps). */
  const settle = async (want: Record<string, number>, what: string) => {
    let last: Record<string, number> = {};
    await waitUntil(
      `${what}: ${JSON.stringify(want)}`,
      async () => {
        last = await balloons();
        return Object.entries(want).every(([n, mib]) => Math.abs((last[n] ?? -1) - mib) <= 2);
      },
      60_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; query-balloon says ${JSON.stringify(last)}`);
    });
    return last;
  };
  const create = async (name: string, tenant: string, memory: string) => {
    await ok('instance', 'create', name, '--image', 'test', '--tenant', tenant, '--memory', memory, '--wait-ready');
    ids.set(name, (await inst(name)).id);
  };

  test('the pool and the tenants are set up through the CLI', async () => {
    await ok('memory', 'pool', 'set', 'default', '--tier', 'local:768M', '--tier', 'cxl:pooled:256M', '--overcommit', '1.5');
    await ok('tenant', 'create', 'acme', '--pool', 'default', '--guaranteed', '256M', '--limit', '1G', '--prefer', 'local');
    await ok('tenant', 'create', 'beta', '--pool', 'default', '--guaranteed', '384M', '--limit', '512M', '--pooled-share', '0.25');
    const p = await pool();
    assert.deepEqual(
      p.spec.tiers.map((t) => t.name),
      ['local', 'cxl'],
    );
    await waitUntil('pool status to show the host', async () => (await pool()).status.domains.some((d) => d.tier === 'local' && d.capacityMiB === 768));
  });

  test('without pressure every guest holds its full size', async () => {
    await create('a1', 'acme', '320M');
    await create('a2', 'acme', '320M');
    assert.deepEqual(await settle({ a1: 320, a2: 320 }, 'acme at full size'), { a1: 320, a2: 320 });
    const a1 = await inst('a1');
    assert.deepEqual(a1.status.memory?.portions, [{ tier: 'local', sizeMiB: 320 }]);
    assert.equal((await pool()).status.conditions.find((x) => x.type === 'Pressure')?.status, 'False');
  });

  test('the third instance creates pressure: the tenant above its guarantee gives memory back, the other keeps its guarantee', async () => {
    await create('b1', 'beta', '384M');
    const b1 = await inst('b1');
    assert.deepEqual(b1.status.memory?.portions, [
      { tier: 'local', sizeMiB: 288 },
      { tier: 'cxl', sizeMiB: 96 },
    ]);
    // Its pooled portion is a memory backend and guest NUMA node of its own.
    const memdevs = await qmp<{ size: number }[]>('b1', 'query-memdev');
    assert.deepEqual(
      memdevs.map((m) => m.size / MiB).sort((x, y) => x - y),
      [96, 288],
    );
    const numa = await qmp<string>('b1', 'human-monitor-command', { 'command-line': 'info numa' });
    assert.match(numa, /2 nodes/);
    assert.match(numa, /node 0 size: 288 MB/);
    assert.match(numa, /node 1 cpus:\s*\r?\nnode 1 size: 96 MB/);

    assert.deepEqual(await settle({ a1: 240, a2: 240, b1: 384 }, 'acme squeezed'), { a1: 240, a2: 240, b1: 384 });
    const a1 = await inst('a1');
    assert.equal(a1.status.memory?.balloon?.targetMiB, 240);
    assert.match(
      a1.status.memory?.balloon?.reason ?? '',
      /local@h-\w+ in pool default is committed 928 MiB over 768 MiB and tenant acme is 384 MiB above its 256 MiB guarantee: gives back 80 MiB/,
    );
    assert.equal(a1.status.conditions.find((x) => x.type === 'Ballooned')?.status, 'True');
    assert.equal((await inst('b1')).status.conditions.find((x) => x.type === 'Ballooned')?.status, 'False');
    const p = await pool();
    const local = p.status.domains.find((d) => d.tier === 'local')!;
    assert.deepEqual([local.committedMiB, local.balloonedMiB, local.freeMiB, local.shortMiB], [928, 160, 0, 0]);
    assert.equal(p.status.conditions.find((x) => x.type === 'Pressure')?.status, 'True');
    const beta = p.status.tenants.find((t) => t.tenant === 'beta')!;
    assert.ok(beta.heldMiB >= beta.guaranteedMiB);
    const shown = await ok('memory', 'pool', 'show', 'default');
    assert.match(shown.stdout, /acme\s+256M\s+1024M\s+2\s+640M\s+160M\s+480M/);
  });

  test("a tenant's new limit applies to its running instances, and lifting it lets them grow", async () => {
    await ok('tenant', 'set', 'acme', '--limit', '400M');
    // 640 MiB held on a 400 MiB limit: 120 MiB from each guest, which also relieves the pressure.
    await settle({ a1: 200, a2: 200, b1: 384 }, 'acme at its new limit');
    assert.match((await inst('a2')).status.memory?.balloon?.reason ?? '', /tenant acme holds 640 MiB, above its 400 MiB limit: gives back 120 MiB/);
    await ok('tenant', 'set', 'acme', '--limit', '1G');
    await settle({ a1: 240, a2: 240, b1: 384 }, 'acme back under pressure only');
  });

  test('deleting the third instance lets the balloons grow back', async () => {
    await ok('instance', 'delete', 'b1', '--force');
    ids.delete('b1');
    await settle({ a1: 320, a2: 320 }, 'acme back to full size');
    await waitUntil('pressure gone', async () => (await pool()).status.conditions.find((x) => x.type === 'Pressure')?.status === 'False');
    const a1 = await inst('a1');
    assert.equal(a1.status.memory?.balloon?.targetMiB, 320);
    assert.equal(a1.status.conditions.find((x) => x.type === 'Ballooned')?.status, 'False');
  });
});
