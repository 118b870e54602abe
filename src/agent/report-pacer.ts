/**
 * When an agent sends its report: after a sweep only if it changed since the last one sent, and
 * at least once a heartbeat. Repeating an unchanged report is what an idle cluster's controller
 * spends its CPU on (500 agents at a 2 s period: 250 TLS messages a second, 3% of a core in TLS and
 * framing alone), so sweeps can stay frequent and heartbeats long.
 */
import { MEMORY_REPORT_DEADBAND_MIB, type AgentMessage, type VmReport } from '../model/agent-protocol.ts';

type Report = Extract<AgentMessage, { type: 'report' }>;

/**
 * The periods a welcome asks for, kept sane: a period that is not a whole number of milliseconds in
 * 100 ms..1 h (a confused or hostile peer) falls back to the defaults rather than spinning a timer.
 */
export function pacing(heartbeatMs: unknown, sweepMs: unknown): { heartbeatMs: number; sweepMs: number } {
  const ok = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 100 && (x as number) <= 3_600_000;
  const hb = ok(heartbeatMs) ? heartbeatMs : 10_000;
  return { heartbeatMs: hb, sweepMs: ok(sweepMs) ? Math.min(sweepMs, hb) : Math.min(hb, 2000) };
}

export class ReportPacer {
  private last?: { report: Report; at: number };

  constructor(
    private readonly heartbeatMs: number,
    private readonly sweepMs: number,
  ) {}

  /** Whether a sweep's report is worth sending at `now`. */
  due(r: Report, now: number): boolean {
    // Half a sweep early rather than a whole sweep late: sweeps drift by the time their work takes.
    return !this.last || reportChanged(this.last.report, r) || now - this.last.at + this.sweepMs / 2 >= this.heartbeatMs;
  }

  /** Records a report sent (after a sweep, or at once for a change). */
  markSent(r: Report, now: number): void {
    this.last = { report: r, at: now };
  }
}

/** Whether `next` differs from `sent` by more than guests' memory figures moving a little. */
function reportChanged(sent: Report, next: Report): boolean {
  if (sent.vms.length !== next.vms.length) return true;
  if (JSON.stringify(sent.volumes) !== JSON.stringify(next.volumes) || JSON.stringify(sent.storage) !== JSON.stringify(next.storage)) return true;
  const before = new Map(sent.vms.map((v) => [v.instanceId, v]));
  for (const vm of next.vms) {
    const prev = before.get(vm.instanceId);
    if (!prev || vmChanged(prev, vm)) return true;
  }
  return false;
}

function vmChanged(a: VmReport, b: VmReport): boolean {
  const { memory: ma, ...ra } = a;
  const { memory: mb, ...rb } = b;
  if (JSON.stringify(ra) !== JSON.stringify(rb)) return true;
  if (!ma || !mb) return ma !== mb;
  const far = (x: number | undefined, y: number | undefined, by: number) => (x === undefined) !== (y === undefined) || Math.abs((x ?? 0) - (y ?? 0)) >= by;
  return (
    ma.targetMiB !== mb.targetMiB ||
    far(ma.actualMiB, mb.actualMiB, MEMORY_REPORT_DEADBAND_MIB.actualMiB) ||
    far(ma.usedMiB, mb.usedMiB, MEMORY_REPORT_DEADBAND_MIB.usedMiB)
  );
}
