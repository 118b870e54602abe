import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import {
  admit,
  checkEntitlements,
  floorOf,
  planBalloons,
  planPortions,
  portionDomain,
  type Entitlement,
  type PoolModel,
  type VmMemory,
} from '../../../src/memory/index.ts';
import { ent, pool } from './fixtures.ts';

const vm = (id: string, tenant: string, sizeMiB: number, usedMiB?: number, portions = [{ tier: 'local', sizeMiB }]): VmMemory => ({
  id,
  tenant,
  hostId: 'h1',
  sizeMiB,
  portions,
  usedMiB,
});

test('the e2e scenario: the tenant above its guarantee gives back, the other keeps its guarantee, balloons deflate when pressure goes', () => {
  const p = pool(768);
  const ents = new Map([
    ['acme', ent(256, 1024)],
    ['beta', ent(384, 512)],
  ]);
  const two = [vm('a1', 'acme', 320, 40), vm('a2', 'acme', 320, 40)];
  const calm = planBalloons(p, ents, two);
  assert.deepEqual(
    [...calm.targets],
    [
      ['a1', 320],
      ['a2', 320],
    ],
  );
  assert.deepEqual(calm.reclaims, []);

  const three = [...two, vm('b1', 'beta', 384, 40)];
  const squeezed = planBalloons(p, ents, three);
  assert.deepEqual(
    [...squeezed.targets],
    [
      ['a1', 192],
      ['a2', 192],
      ['b1', 384],
    ],
  );
  assert.deepEqual(squeezed.pressure, [{ domain: 'local@h1', committedMiB: 1024, capacityMiB: 768, excessMiB: 256, shortMiB: 0 }]);
  assert.ok(squeezed.reclaims.every((r) => r.tenant === 'acme' && r.kind === 'free-cache' && r.reason === 'pressure'));
  assert.equal(squeezed.tenants.get('beta')!.heldMiB, 384);

  assert.deepEqual(
    [...planBalloons(p, ents, two).targets],
    [
      ['a1', 320],
      ['a2', 320],
    ],
    'deleting b1 deflates the others',
  );
});

test('tenants give in proportion to how far above their guarantee they are, free and cache before memory in use', () => {
  const p = pool(900);
  const ents = new Map([
    ['x', ent(100, 10_000)],
    ['y', ent(500, 10_000)],
  ]);
  // x is 500 above its guarantee, y 100: they give 5:1 of the 300 MiB excess.
  const plan = planBalloons(p, ents, [vm('x1', 'x', 600, 100), vm('y1', 'y', 600, 550)]);
  assert.equal(600 - plan.targets.get('x1')!, 250);
  assert.equal(600 - plan.targets.get('y1')!, 50);
  // y1 uses 550 of 600: 50 free, so all of its share is free memory; x1 gives from its 500 free.
  assert.ok(plan.reclaims.every((r) => r.kind === 'free-cache'));

  const busy = planBalloons(p, new Map([['x', ent(0, 10_000)]]), [vm('x1', 'x', 600, 500), vm('x2', 'x', 600, 100)]);
  // 200 excess: x2 has 500 free, x1 100 (weights): free memory covers it all, shared 5:1 ... but capped by what each has.
  assert.equal(busy.reclaims.filter((r) => r.kind === 'in-use').length, 0);
  const tight = planBalloons(pool(300), new Map([['x', ent(0, 10_000)]]), [vm('x1', 'x', 600, 500)]);
  assert.deepEqual(
    tight.reclaims.map((r) => [r.kind, r.mib]),
    [
      ['free-cache', 100],
      ['in-use', 200],
    ],
    'memory in use only once free and cache memory is gone',
  );
});

test('a guest is never ballooned below its floor, a tenant never below its guarantee; what cannot be had is a shortfall', () => {
  const p = pool(200);
  const plan = planBalloons(p, new Map([['g', ent(300, 1000)]]), [vm('g1', 'g', 400, 50)]);
  assert.equal(plan.targets.get('g1'), 300, 'down to the guarantee, not further');
  assert.equal(plan.pressure[0]!.shortMiB, 100);
  const floors = planBalloons(pool(100), new Map(), [vm('f1', 't', 400, 10)]);
  assert.equal(floors.targets.get('f1'), floorOf(p.floor, 400));
  assert.equal(floors.pressure[0]!.shortMiB, 28, '300 MiB over capacity, 272 MiB above the floor');
});

test('lowering a limit shrinks running guests to it, without any pressure', () => {
  const plan = planBalloons(pool(10_000), new Map([['t', ent(0, 500)]]), [vm('t1', 't', 400, 100), vm('t2', 't', 400, 100)]);
  assert.equal(plan.tenants.get('t')!.heldMiB, 500);
  assert.ok(plan.reclaims.every((r) => r.reason === 'over-limit'));
});

test('pressure on a pooled tier is relieved by the guests with memory there', () => {
  const p = pool(2000, 256);
  const ents = new Map([['t', ent(0, 10_000)]]);
  const a = vm('a', 't', 512, 64, [
    { tier: 'local', sizeMiB: 256 },
    { tier: 'cxl', sizeMiB: 256 },
  ]);
  const b = vm('b', 't', 512, 64, [
    { tier: 'local', sizeMiB: 384 },
    { tier: 'cxl', sizeMiB: 128 },
  ]);
  const c = vm('c', 't', 512, 64);
  const plan = planBalloons(p, ents, [a, b, c]);
  assert.equal(plan.targets.get('c'), 512, 'a guest with no pooled memory is not touched');
  assert.deepEqual(
    plan.pressure.find((x) => x.domain === 'cxl'),
    { domain: 'cxl', committedMiB: 384, capacityMiB: 256, excessMiB: 128, shortMiB: 0 },
  );
  assert.ok(plan.reclaims.every((r) => r.domain === 'cxl'));
});

test('portions: the pooled share first on pooled tiers, the rest by preference within headroom; local first', () => {
  const p = pool(1000, 512, 1);
  assert.deepEqual(planPortions(p, ent(0, 1e6, { pooledShare: 0.25 }), [], { sizeMiB: 512, hostId: 'h1' }), [
    { tier: 'local', sizeMiB: 384 },
    { tier: 'cxl', sizeMiB: 128 },
  ]);
  assert.deepEqual(planPortions(p, ent(0, 1e6, { prefer: ['cxl', 'local'] }), [], { sizeMiB: 600, hostId: 'h1' }), [
    { tier: 'local', sizeMiB: 88 },
    { tier: 'cxl', sizeMiB: 512 },
  ]);
  assert.deepEqual(
    planPortions(p, ent(0, 1e6), [vm('x', 't', 990)], { sizeMiB: 100, hostId: 'h1' }),
    [{ tier: 'cxl', sizeMiB: 100 }],
    'a sliver of 10 MiB is not worth a guest NUMA node',
  );
  assert.equal(planPortions(p, ent(0, 1e6, { prefer: ['local'] }), [vm('x', 't', 990)], { sizeMiB: 100, hostId: 'h1' }), undefined);
});

test('admission: tenant limits, room, and guarantees, with reasons', () => {
  const p = pool(768);
  const ents = new Map([
    ['acme', ent(256, 1024)],
    ['beta', ent(384, 512)],
  ]);
  const running = [vm('a1', 'acme', 320), vm('a2', 'acme', 320)];
  assert.deepEqual(admit(p, ents, running, { id: 'b1', tenant: 'beta', sizeMiB: 384, hostId: 'h1' }), {
    ok: true,
    portions: [{ tier: 'local', sizeMiB: 384 }],
  });
  const big = admit(p, ents, running, { id: 'b2', tenant: 'beta', sizeMiB: 600, hostId: 'h1' });
  assert.equal(big.ok || big.reason, 'OverTenantLimit');
  assert.equal(!big.ok && big.permanent, true);
  const more = admit(p, ents, running, { id: 'a3', tenant: 'acme', sizeMiB: 512, hostId: 'h1' });
  assert.equal(more.ok || more.reason, 'TenantLimit');
  assert.match(!more.ok ? more.message : '', /holds 640 MiB of its 1024 MiB limit/);
  // A third acme guest fits the limit, but beta's guarantee and the floors would not fit beside it.
  const crowd = admit(p, ents, [...running, vm('b1', 'beta', 384)], { id: 'a3', tenant: 'acme', sizeMiB: 320, hostId: 'h1' });
  assert.equal(crowd.ok || crowd.reason, 'NoRoom');
  const wide = { ...p, maxOvercommit: 3 };
  const roomy = new Map([...ents, ['acme', ent(256, 2000)]]);
  const fits = admit(wide, roomy, [...running, vm('b1', 'beta', 384)], { id: 'a3', tenant: 'acme', sizeMiB: 320, hostId: 'h1' });
  assert.equal(fits.ok, true, 'acme can give back all 576 MiB of the excess, down to its floors');
  const risky = admit(wide, roomy, [...running, vm('b1', 'beta', 384)], { id: 'a3', tenant: 'acme', sizeMiB: 600, hostId: 'h1' });
  assert.equal(risky.ok || risky.reason, 'GuaranteesAtRisk');
  assert.match(!risky.ok ? risky.message : '', /must keep 790 MiB/);
});

test('entitlements: guarantees within limits and within the pool', () => {
  const p = pool(768);
  assert.deepEqual(
    checkEntitlements(
      p,
      new Map([
        ['a', ent(384, 1000)],
        ['b', ent(384, 400)],
      ]),
    ),
    { ok: true },
  );
  assert.match(
    (
      checkEntitlements(
        p,
        new Map([
          ['a', ent(500, 1000)],
          ['b', ent(300, 400)],
        ]),
      ) as { message: string }
    ).message,
    /800 MiB, more than its 768 MiB/,
  );
  assert.match((checkEntitlements(p, new Map([['a', ent(500, 400)]])) as { message: string }).message, /above its limit/);
  assert.match((checkEntitlements(p, new Map([['a', ent(0, 400, { prefer: ['gpu'] })]])) as { message: string }).message, /has no tier gpu/);
});

// ---- properties ----

const arbWorld = fc
  .record({
    local: fc.integer({ min: 256, max: 8192 }),
    pooled: fc.oneof(fc.constant(0), fc.integer({ min: 64, max: 4096 })),
    tenants: fc.array(fc.record({ g: fc.integer({ min: 0, max: 2048 }), extra: fc.integer({ min: 0, max: 8192 }) }), { minLength: 1, maxLength: 4 }),
    vms: fc.array(
      fc.record({
        t: fc.nat(3),
        size: fc.integer({ min: 64, max: 2048 }),
        usedFrac: fc.option(fc.double({ min: 0, max: 1, noNaN: true })),
        pooledFrac: fc.double({ min: 0, max: 1, noNaN: true }),
      }),
      { maxLength: 10 },
    ),
  })
  .map((w) => {
    const p: PoolModel = pool(w.local, w.pooled);
    const ents = new Map<string, Entitlement>(w.tenants.map((t, i) => [`t${i}`, ent(t.g, t.g + t.extra)]));
    const vms = w.vms.map((v, i) => {
      const pooledPart = w.pooled ? Math.floor(v.size * v.pooledFrac) : 0;
      const portions = [{ tier: 'local', sizeMiB: v.size - pooledPart }, ...(pooledPart ? [{ tier: 'cxl', sizeMiB: pooledPart }] : [])].filter(
        (x) => x.sizeMiB > 0,
      );
      return vm(`v${i}`, `t${v.t % w.tenants.length}`, v.size, v.usedFrac === null ? undefined : Math.round(v.size * v.usedFrac), portions);
    });
    return { p, ents, vms };
  });

test('property: guarantees and floors hold, limits are met where floors allow, and every reclaimed MiB is in the ledger', () => {
  fc.assert(
    fc.property(arbWorld, ({ p, ents, vms }) => {
      const plan = planBalloons(p, ents, vms);
      for (const v of vms) {
        const t = plan.targets.get(v.id)!;
        assert.ok(t <= v.sizeMiB && t >= floorOf(p.floor, v.sizeMiB), `${v.id}: ${t}`);
        const ledger = plan.reclaims.filter((r) => r.vmId === v.id).reduce((n, r) => n + r.mib, 0);
        assert.equal(ledger, v.sizeMiB - t, 'the ledger explains every MiB a guest gives');
        const soft = Math.max(0, v.sizeMiB - Math.max(v.usedMiB ?? v.sizeMiB, floorOf(p.floor, v.sizeMiB)));
        const softTaken = plan.reclaims.filter((r) => r.vmId === v.id && r.kind === 'free-cache').reduce((n, r) => n + r.mib, 0);
        assert.ok(softTaken <= soft, `${v.id}: ${softTaken} MiB counted as free or cache, it had ${soft}`);
        for (const r of plan.reclaims.filter((x) => x.vmId === v.id)) {
          assert.ok(r.mib > 0);
          const inDomain = v.portions.filter((x) => portionDomain(p, v, x) === r.domain).reduce((n, x) => n + x.sizeMiB, 0);
          assert.ok(inDomain > 0, 'reclaimed only where the guest has memory');
        }
      }
      for (const [name, tm] of plan.tenants) {
        const e = ents.get(name)!;
        const mine = vms.filter((v) => v.tenant === name);
        assert.equal(
          tm.reclaimedMiB,
          plan.reclaims.filter((r) => r.tenant === name).reduce((n, r) => n + r.mib, 0),
        );
        const pressureTaken = plan.reclaims.filter((r) => r.tenant === name && r.reason === 'pressure').reduce((n, r) => n + r.mib, 0);
        if (pressureTaken > 0) assert.ok(tm.heldMiB >= Math.min(tm.committedMiB, e.guaranteedMiB), `${name} pushed below its guarantee`);
        const allAtFloor = mine.every((v) => plan.targets.get(v.id) === floorOf(p.floor, v.sizeMiB));
        assert.ok(tm.heldMiB <= e.limitMiB || allAtFloor, `${name} above its limit`);
      }
      // Each domain ends within capacity, apart from the shortfall it reports.
      for (const d of plan.pressure) {
        const left =
          vms.reduce((n, v) => n + v.portions.filter((x) => portionDomain(p, v, x) === d.domain).reduce((m, x) => m + x.sizeMiB, 0), 0) -
          plan.reclaims.filter((r) => r.domain === d.domain).reduce((n, r) => n + r.mib, 0);
        assert.ok(left <= d.capacityMiB + d.shortMiB, `${d.domain}: ${left} held, capacity ${d.capacityMiB}, short ${d.shortMiB}`);
      }
    }),
    { numRuns: 400 },
  );
});

test('property: memory in use is taken from a guest only when no guest of its tenant there has free or cache memory left to give', () => {
  fc.assert(
    fc.property(arbWorld, ({ p, ents, vms }) => {
      const plan = planBalloons(p, ents, vms);
      for (const r of plan.reclaims.filter((x) => x.kind === 'in-use' && x.reason === 'pressure')) {
        for (const v of vms.filter((x) => x.tenant === r.tenant && x.portions.some((y) => portionDomain(p, x, y) === r.domain))) {
          const soft = Math.max(0, v.sizeMiB - Math.max(v.usedMiB ?? v.sizeMiB, floorOf(p.floor, v.sizeMiB)));
          const softTaken = plan.reclaims.filter((x) => x.vmId === v.id && x.kind === 'free-cache').reduce((n, x) => n + x.mib, 0);
          const held =
            v.portions.filter((y) => portionDomain(p, v, y) === r.domain).reduce((n, y) => n + y.sizeMiB, 0) -
            plan.reclaims.filter((x) => x.vmId === v.id && x.domain === r.domain).reduce((n, x) => n + x.mib, 0);
          const room = plan.targets.get(v.id)! - floorOf(p.floor, v.sizeMiB);
          assert.ok(softTaken >= soft || held === 0 || room === 0, `${v.id} kept ${soft - softTaken} MiB free while ${r.vmId} gave memory in use`);
        }
      }
    }),
    { numRuns: 400 },
  );
});

test('property: no memory in use is taken for pressure while a guest there, of any tenant still above its guarantee, keeps free or cache memory', () => {
  fc.assert(
    fc.property(arbWorld, ({ p, ents, vms }) => {
      const plan = planBalloons(p, ents, vms);
      for (const r of plan.reclaims.filter((x) => x.kind === 'in-use' && x.reason === 'pressure')) {
        for (const v of vms.filter((x) => x.portions.some((y) => portionDomain(p, x, y) === r.domain))) {
          const t = plan.tenants.get(v.tenant)!;
          if (t.heldMiB <= t.guaranteedMiB) continue;
          const soft = Math.max(0, v.sizeMiB - Math.max(v.usedMiB ?? v.sizeMiB, floorOf(p.floor, v.sizeMiB)));
          const softTaken = plan.reclaims.filter((x) => x.vmId === v.id && x.kind === 'free-cache').reduce((n, x) => n + x.mib, 0);
          const held =
            v.portions.filter((y) => portionDomain(p, v, y) === r.domain).reduce((n, y) => n + y.sizeMiB, 0) -
            plan.reclaims.filter((x) => x.vmId === v.id && x.domain === r.domain).reduce((n, x) => n + x.mib, 0);
          const room = plan.targets.get(v.id)! - floorOf(p.floor, v.sizeMiB);
          assert.ok(
            softTaken >= soft || held === 0 || room === 0,
            `${v.id} (${v.tenant}) kept ${soft - softTaken} MiB free while ${r.vmId} (${r.tenant}) gave memory in use`,
          );
        }
      }
    }),
    { numRuns: 400 },
  );
});

test('property: constant load gives constant targets (guests reporting the usage their targets leave them)', () => {
  fc.assert(
    fc.property(arbWorld, ({ p, ents, vms }) => {
      let targets = planBalloons(p, ents, vms).targets;
      for (let round = 0; round < 5; round++) {
        // Under constant load a guest's memory in use does not change when its balloon moves.
        const next = planBalloons(
          p,
          ents,
          vms.map((v) => ({ ...v, usedMiB: v.usedMiB })),
        ).targets;
        assert.deepEqual([...next], [...targets]);
        targets = next;
      }
    }),
    { numRuns: 100 },
  );
});

test('property: an admitted instance never leaves the pool short, and never takes a tenant over its limit', () => {
  fc.assert(
    fc.property(arbWorld, fc.integer({ min: 64, max: 2048 }), fc.nat(3), ({ p, ents, vms }, size, t) => {
      // Start from a state the policy can honour.
      if (planBalloons(p, ents, vms).pressure.some((x) => x.shortMiB > 0)) return;
      const tenant = [...ents.keys()][t % ents.size]!;
      const a = admit(p, ents, vms, { id: 'new', tenant, sizeMiB: size, hostId: 'h1' });
      if (!a.ok) return;
      assert.equal(
        a.portions.reduce((n, x) => n + x.sizeMiB, 0),
        size,
      );
      const after = [...vms, vm('new', tenant, size, undefined, a.portions)];
      assert.ok(planBalloons(p, ents, after).pressure.every((x) => x.shortMiB === 0));
      assert.ok(after.filter((v) => v.tenant === tenant).reduce((n, v) => n + v.sizeMiB, 0) <= ents.get(tenant)!.limitMiB);
    }),
    { numRuns: 400 },
  );
});
