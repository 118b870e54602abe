/**
 * The balloon controller, one run per memory pool: it runs the balloon policy on the pool's
 * running guests (sizes, placement, entitlements, memory in use from the agents' reports), asks
 * agents to move balloons whose target changed, and writes the explanation: the pool's usage per
 * domain and tenant, and on each instance its target, what it holds and why.
 */
import { committedByDomain, domainsOf, planBalloons, type BalloonPlan, type Entitlement, type PoolModel, type VmMemory } from '../../memory/index.ts';
import { MEMORY_REPORT_DEADBAND_MIB, type VmReport } from '../../model/agent-protocol.ts';
import { setCondition } from '../../model/conditions.ts';
import type { Condition } from '../../model/common.ts';
import type { Instance } from '../../model/instance.ts';
import type { DomainUsage, InstanceMemory, MemoryPoolStatus, TenantUsage } from '../../model/memory.ts';
import type { Ctx } from '../context.ts';
import type { Reconciler } from '../runtime/reconciler.ts';
import { entitlementsIn, poolMembers, poolModel, vmsIn } from './pools.ts';

/** Target changes smaller than this are not worth a balloon move (guests' use wobbles). */
export const TARGET_DEADBAND_MIB = 8;
/** A move not confirmed by the agent's reports within this time is sent again. */
const RESEND_MS = 15_000;

/** Whether a guest's balloon should be moved from what the agent reports to the desired target. */
export function needsMove(sizeMiB: number, desiredMiB: number, report: VmReport['memory']): boolean {
  const current = report?.targetMiB ?? report?.actualMiB ?? sizeMiB;
  if (desiredMiB === sizeMiB) return current !== sizeMiB;
  return Math.abs(desiredMiB - current) >= TARGET_DEADBAND_MIB;
}

/** Why a guest holds less than its size, in words an operator can act on. */
export function explain(plan: BalloonPlan, vm: VmMemory, pool: PoolModel, mine = plan.reclaims.filter((r) => r.vmId === vm.id)): string | undefined {
  if (!mine.length) return undefined;
  const t = plan.tenants.get(vm.tenant)!;
  const parts: string[] = [];
  const overLimit = mine.filter((r) => r.reason === 'over-limit').reduce((n, r) => n + r.mib, 0);
  if (overLimit) parts.push(`tenant ${vm.tenant} holds ${t.committedMiB} MiB, above its ${t.limitMiB} MiB limit: gives back ${overLimit} MiB`);
  const byDomain = new Map<string, number>();
  for (const r of mine.filter((x) => x.reason === 'pressure')) byDomain.set(r.domain, (byDomain.get(r.domain) ?? 0) + r.mib);
  for (const [d, mib] of byDomain) {
    const p = plan.pressure.find((x) => x.domain === d);
    parts.push(
      `${d} in pool ${pool.name} is committed ${p?.committedMiB ?? '?'} MiB over ${p?.capacityMiB ?? '?'} MiB and tenant ${vm.tenant} ` +
        `is ${Math.max(0, t.committedMiB - t.guaranteedMiB)} MiB above its ${t.guaranteedMiB} MiB guarantee: gives back ${mib} MiB`,
    );
  }
  const inUse = mine.filter((r) => r.kind === 'in-use').reduce((n, r) => n + r.mib, 0);
  if (inUse) parts.push(`${inUse} MiB of it was in use in the guest`);
  return parts.join('; ');
}

export function poolUsage(
  pool: PoolModel,
  ents: ReadonlyMap<string, Entitlement>,
  placed: VmMemory[],
  plan: BalloonPlan,
): Pick<MemoryPoolStatus, 'domains' | 'tenants'> {
  const committed = committedByDomain(pool, placed);
  const hostName = new Map(pool.hosts.map((h) => [h.id, h.name]));
  const reclaimed = new Map<string, number>();
  for (const r of plan.reclaims) reclaimed.set(r.domain, (reclaimed.get(r.domain) ?? 0) + r.mib);
  const short = new Map(plan.pressure.map((p) => [p.domain, p.shortMiB]));
  const domains: DomainUsage[] = domainsOf(pool).map((d) => {
    const ballooned = reclaimed.get(d.id) ?? 0;
    const c = committed.get(d.id) ?? 0;
    return {
      domain: d.id,
      tier: d.tier,
      kind: d.kind,
      hostName: d.hostId ? hostName.get(d.hostId) : undefined,
      capacityMiB: d.capacityMiB,
      committedMiB: c,
      balloonedMiB: ballooned,
      freeMiB: d.capacityMiB - (c - ballooned),
      shortMiB: short.get(d.id) ?? 0,
    };
  });
  const names = [...new Set([...ents.keys(), ...placed.map((v) => v.tenant)])].sort();
  const tenants: TenantUsage[] = names.map((t) => {
    const e = ents.get(t);
    const mine = placed.filter((v) => v.tenant === t);
    const committedMiB = mine.reduce((n, v) => n + v.sizeMiB, 0);
    const balloonedMiB = plan.tenants.get(t)?.reclaimedMiB ?? 0;
    return {
      tenant: t,
      guaranteedMiB: e?.guaranteedMiB ?? 0,
      limitMiB: e?.limitMiB ?? -1,
      committedMiB,
      balloonedMiB,
      heldMiB: committedMiB - balloonedMiB,
      instances: mine.length,
    };
  });
  return { domains, tenants };
}

function poolConditions(prev: Condition[], plan: BalloonPlan, now: Date): Condition[] {
  const over = plan.pressure.filter((p) => p.excessMiB > 0);
  const short = plan.pressure.filter((p) => p.shortMiB > 0);
  let c = setCondition(
    prev,
    over.length
      ? {
          type: 'Pressure',
          status: 'True',
          reason: 'OverCommitted',
          message: over.map((p) => `${p.domain}: ${p.committedMiB} MiB committed on ${p.capacityMiB} MiB`).join('; '),
        }
      : { type: 'Pressure', status: 'False', reason: 'WithinCapacity', message: '' },
    now,
  );
  c = setCondition(
    c,
    short.length
      ? { type: 'GuaranteesHonoured', status: 'False', reason: 'Short', message: short.map((p) => `${p.domain} short by ${p.shortMiB} MiB`).join('; ') }
      : { type: 'GuaranteesHonoured', status: 'True', reason: 'Honoured', message: '' },
    now,
  );
  return c;
}

/** Reported numbers move a little all the time; only a real change is worth a store write. */
function balloonChanged(a: InstanceMemory['balloon'], b: InstanceMemory['balloon']): boolean {
  if (!a || !b) return a !== b;
  const far = (x: number | undefined, y: number | undefined, by: number) => (x === undefined) !== (y === undefined) || Math.abs((x ?? 0) - (y ?? 0)) >= by;
  return (
    a.targetMiB !== b.targetMiB ||
    a.reason !== b.reason ||
    far(a.actualMiB, b.actualMiB, MEMORY_REPORT_DEADBAND_MIB.actualMiB) ||
    far(a.usedMiB, b.usedMiB, MEMORY_REPORT_DEADBAND_MIB.usedMiB)
  );
}

export class MemoryReconciler implements Reconciler {
  readonly kind = 'memory';
  private readonly sent = new Map<string, { targetMiB: number; at: number }>();
  private seq = 0;

  constructor(private readonly d: Ctx) {}

  async reconcile(poolId: string): Promise<void> {
    const { store } = this.d;
    this.foldAnswers(poolId);
    const pool = await store.memoryPools.get(poolId);
    if (!pool) return;
    const [pools, hosts, tenants, instances] = await Promise.all([store.memoryPools.list(), store.hosts.list(), store.tenants.list(), store.instances.list()]);
    const members = poolMembers(pools, hosts).get(pool.id) ?? [];
    const model = poolModel(pool, members, this.d.allocation);
    const ents = entitlementsIn(pool.name, tenants);
    const placed = vmsIn(model, instances);
    const hub = this.d.hub();
    const running: VmMemory[] = [];
    const reports = new Map<string, VmReport>();
    for (const vm of placed) {
      const r = hub.vm(vm.hostId, vm.id);
      if (r?.state !== 'running') continue;
      reports.set(vm.id, r);
      running.push({ ...vm, usedMiB: r.memory?.usedMiB });
    }
    const plan = planBalloons(model, ents, running);
    const byId = new Map(instances.map((i) => [i.id, i]));
    // Each guest's reclaims, grouped once (looked up per guest, they cost a pass over every reclaim each).
    const reclaimsOf = new Map<string, BalloonPlan['reclaims']>();
    for (const r of plan.reclaims) reclaimsOf.set(r.vmId, [...(reclaimsOf.get(r.vmId) ?? []), r]);
    const now = this.d.clock.now();

    for (const vm of running) {
      const desired = plan.targets.get(vm.id)!;
      const report = reports.get(vm.id)!.memory;
      const reason = explain(plan, vm, model, reclaimsOf.get(vm.id) ?? []);
      await this.recordBalloon(byId.get(vm.id)!, { targetMiB: desired, actualMiB: report?.actualMiB, usedMiB: report?.usedMiB, reason }, now);
      const last = this.sent.get(vm.id);
      const pending = last && last.targetMiB === desired && now.getTime() - last.at < RESEND_MS;
      if (pending || !needsMove(vm.sizeMiB, desired, report)) continue;
      this.sent.set(vm.id, { targetMiB: desired, at: now.getTime() });
      this.d.log.info(
        { pool: pool.name, instanceId: vm.id, tenant: vm.tenant, from: report?.targetMiB ?? report?.actualMiB, to: desired, reason: reason ?? 'no pressure' },
        'balloon target',
      );
      this.d.ops
        .send(
          { kind: 'memory', key: pool.id },
          vm.hostId,
          { opId: `balloon/${vm.id}/${++this.seq}`, kind: 'vm.balloon', instanceId: vm.id, targetMiB: desired },
          { subject: vm.id, wakeOnFailureOnly: true },
        )
        .catch(() => this.sent.delete(vm.id));
    }
    const runningIds = new Set(running.map((v) => v.id));
    for (const id of this.sent.keys()) if (!runningIds.has(id)) this.sent.delete(id);

    const usage = poolUsage(model, ents, placed, plan);
    await this.d.status.edit(store.memoryPools, pool.id, (cur) => {
      const st: MemoryPoolStatus = {
        ...cur,
        phase: members.length ? 'active' : 'empty',
        hosts: members.map((h) => h.name).sort(),
        ...usage,
        conditions: poolConditions(cur.conditions, plan, now),
      };
      const same = JSON.stringify({ ...st, updatedAt: undefined }) === JSON.stringify({ ...cur, updatedAt: undefined });
      return same ? null : { ...st, updatedAt: now.toISOString() };
    });
  }

  private async recordBalloon(inst: Instance, balloon: NonNullable<InstanceMemory['balloon']>, now: Date): Promise<void> {
    if (!inst.status.memory || !balloonChanged(inst.status.memory.balloon, balloon)) return;
    await this.d.status.edit(this.d.store.instances, inst.id, (st, cur) => {
      if (!st.memory) return null;
      const ballooned = balloon.targetMiB < cur.spec.memoryMiB;
      const conditions = setCondition(
        st.conditions,
        ballooned
          ? {
              type: 'Ballooned',
              status: 'True',
              reason: 'Reclaimed',
              message: `holds ${balloon.targetMiB} of ${cur.spec.memoryMiB} MiB: ${balloon.reason ?? ''}`,
            }
          : { type: 'Ballooned', status: 'False', reason: 'FullSize', message: '' },
        now,
      );
      return { ...st, conditions, memory: { ...st.memory, balloon } };
    });
  }

  /** Failed moves are forgotten (and so tried again); the rest only leave the tracker. */
  private foldAnswers(poolId: string): void {
    for (const t of this.d.ops.ofOwner({ kind: 'memory', key: poolId })) {
      if (!t.result) continue;
      if (!t.result.ok && t.subject) {
        this.sent.delete(t.subject);
        this.d.log.warn({ hostId: t.hostId, instanceId: t.subject, err: t.result.error }, 'balloon move failed');
      }
      void this.d.ops.settle(t.opId).catch((e: Error) => this.d.log.warn({ err: e.message }, 'could not forget a balloon move'));
    }
  }
}
