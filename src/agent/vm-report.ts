/** What the VM manager keeps per VM, and the report the controller gets of it (pure). */
import type { QmpClient, QmpEvent, VmBootState, VmSpec } from '../hypervisor/index.ts';
import type { VmReport, VmState } from '../model/agent-protocol.ts';
import type { StopProgress } from '../model/instance.ts';
import type { FileTail } from './file-tail.ts';
import type { SerialLogLimiter } from './serial-log.ts';

export interface ManagedVm {
  id: string;
  state: VmState;
  spec?: VmSpec;
  pid?: number;
  boot?: VmBootState;
  /** The shared QMP connection and the listeners this manager put on it. */
  qmp?: { client: QmpClient; onEvent: (ev: QmpEvent) => void; onClose: () => void };
  shutdownReason?: string;
  marker?: FileTail;
  serialLimit?: SerialLogLimiter;
  /** The balloon as last sampled, and the target this agent set. */
  memory?: { targetMiB?: number; actualMiB: number; usedMiB?: number };
  /** While it stops: how, and when it is forced off if the guest ignores the power button. */
  stopping?: StopProgress;
  lock: Promise<unknown>;
}

/** The VM's report; none for an entry without a spec (an operation on a VM this host never had). */
export function vmReport(m: ManagedVm): VmReport | undefined {
  if (!m.spec) return undefined;
  return {
    instanceId: m.id,
    state: m.state,
    pid: m.state === 'running' ? m.pid : undefined,
    accel: m.spec.accel,
    forwards: m.spec.forwards,
    nics: m.spec.nics?.map((n) =>
      n.mode === 'vf' ? { pciAddress: n.pciAddress, mac: n.mac, mode: n.mode, reason: n.reason } : { tap: n.tap, mac: n.mac, mode: n.mode, reason: n.reason },
    ),
    generation: m.spec.owner.generation,
    restartSeq: m.spec.owner.restartSeq,
    bootedAt: m.boot?.launchedAt,
    readyAt: m.boot?.readyAt,
    lastExit: m.boot?.exit,
    disks: m.spec.disks.map((d) => d.volumeId),
    // Kept in vm.json: a release the controller has not heard of yet survives an agent restart.
    released: m.spec.owner.released?.length ? m.spec.owner.released : undefined,
    memory: m.state === 'running' ? m.memory : undefined,
    stopping: m.state === 'stopping' ? m.stopping : undefined,
  };
}
