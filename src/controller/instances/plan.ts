/**
 * What the instance reconciler does next, decided from desired state (spec), what the host's agent
 * reports (VmReport) and the last operation sent. Pure, so every transition is tested directly.
 * The reconciler runs it whenever anything about the instance changes, and after restarts:
 * operations are named by instance, generation and kind, so re-sending one is harmless.
 */
import { setCondition } from '../../model/common.ts';
import type { VmReport } from '../../model/agent-protocol.ts';
import type { Instance, InstanceStatus, LastOp } from '../../model/instance.ts';

export type OpKind = 'vm.start' | 'vm.restart' | 'vm.stop' | 'vm.delete' | 'vm.attach' | 'vm.detach';

export interface DesiredDisk {
  volumeId: string;
  boot: boolean;
  /** Changes with each attach request (the volume's generation), so re-attaching is a new operation. */
  tag: string;
}

export interface PlanContext {
  /** The host the instance is placed on still exists. */
  hostExists: boolean;
  hostName?: string;
  hostConnected: boolean;
  /** The agent's report for this VM; undefined means the (connected) host has no such VM. */
  vm?: VmReport;
  /** The last operation is still awaiting its answer on a live connection. */
  lastOpInFlight: boolean;
  now: Date;
  /** Volumes the VM should have, the boot volume first. */
  desiredDisks: DesiredDisk[];
  /** Set while some desired volume is not yet on the host: the VM cannot start before. */
  disksWaiting?: string;
}

export interface Plan {
  status: InstanceStatus;
  /** force: a stop or restart that powers the VM off at once (the spec's forceOff). */
  send?: { opId: string; kind: OpKind; volumeId?: string; force?: boolean };
  remove?: boolean;
}

export function opIds(i: Pick<Instance, 'id' | 'generation' | 'spec'>) {
  return {
    start: `${i.id}/g${i.generation}/start`,
    stop: `${i.id}/g${i.generation}/stop`,
    restart: `${i.id}/r${i.spec.restartSeq}/restart`,
    delete: `${i.id}/delete`,
  };
}

function sent(opId: string, kind: OpKind, now: Date): LastOp {
  return { opId, kind, state: 'sent', at: now.toISOString() };
}

export function planInstance(i: Instance, ctx: PlanContext): Plan {
  const now = ctx.now;
  const st: InstanceStatus = { ...i.status, conditions: [...i.status.conditions] };
  const ids = opIds(i);
  const last = st.lastOp;
  const send = (opId: string, kind: OpKind, volumeId?: string): Plan => {
    st.lastOp = sent(opId, kind, now);
    const force = (kind === 'vm.stop' || kind === 'vm.restart') && i.spec.forceOff ? { force: true } : {};
    return { status: st, send: volumeId ? { opId, kind, volumeId } : { opId, kind, ...force } };
  };

  if (st.phase === 'deleting') {
    if (!st.hostId || !ctx.hostExists) return { status: st, remove: true };
    if (!ctx.hostConnected) {
      st.message = `waiting for host ${ctx.hostName ?? st.hostId} to reconnect to remove the VM`;
      return { status: st };
    }
    if (last?.opId === ids.delete) {
      if (last.state === 'succeeded') return { status: st, remove: true };
      if (last.state === 'sent' && ctx.lastOpInFlight) return { status: st };
      if (last.state === 'failed') {
        st.message = `delete failed: ${last.error ?? 'unknown error'}`;
        return { status: st };
      }
    }
    return send(ids.delete, 'vm.delete');
  }

  if (!st.hostId) return { status: st };

  st.conditions = setCondition(
    st.conditions,
    ctx.hostConnected
      ? { type: 'HostConnected', status: 'True', reason: 'Connected', message: '' }
      : { type: 'HostConnected', status: 'False', reason: 'AgentDisconnected', message: `the agent of host ${ctx.hostName ?? st.hostId} is not connected` },
    now,
  );
  // While the host is away nothing is known about the VM: keep the last phase rather than guess.
  if (!ctx.hostConnected) return { status: st };

  const vm = ctx.vm;
  st.stopping = vm?.state === 'stopping' ? vm.stopping : undefined;
  if (vm) {
    st.accel = vm.accel;
    st.network = vm.nics?.length ? { forwards: vm.forwards, nics: vm.nics } : { forwards: vm.forwards };
    st.bootedAt = vm.bootedAt;
    st.readyAt = vm.readyAt;
  }
  const running = vm?.state === 'running';
  st.conditions = setCondition(
    st.conditions,
    running && vm?.readyAt
      ? { type: 'GuestReady', status: 'True', reason: 'ReadyMarkerSeen', message: '' }
      : { type: 'GuestReady', status: 'False', reason: running ? 'Booting' : 'NotRunning', message: '' },
    now,
  );

  // A forced stop or restart asked while a stop waits for the guest: sent now, and the host powers
  // the VM off at once, ending that wait (rather than after it).
  if (last?.state === 'sent' && ctx.lastOpInFlight && i.spec.forceOff && vm?.state === 'stopping' && (last.kind === 'vm.stop' || last.kind === 'vm.restart')) {
    const forced =
      i.spec.powerState === 'stopped'
        ? ([ids.stop, 'vm.stop'] as const)
        : i.spec.restartSeq > vm.restartSeq
          ? ([ids.restart, 'vm.restart'] as const)
          : undefined;
    if (forced && forced[0] !== last.opId) {
      st.phase = 'stopping';
      return send(forced[0], forced[1]);
    }
  }
  // One operation at a time per instance: wait for the answer before deciding the next one.
  if (last?.state === 'sent' && ctx.lastOpInFlight) {
    if (last.kind === 'vm.stop') st.phase = 'stopping';
    // A restart first stops the VM: say so while it does.
    else if (last.kind === 'vm.start' || last.kind === 'vm.restart') st.phase = vm?.state === 'stopping' ? 'stopping' : 'starting';
    return { status: st };
  }

  if (i.spec.powerState === 'running') {
    const ourStart = last && (last.opId === ids.start || last.opId === ids.restart);
    if (vm?.state === 'running') {
      if (i.spec.restartSeq > vm.restartSeq) {
        st.phase = 'starting';
        return send(ids.restart, 'vm.restart');
      }
      st.phase = 'running';
      // Volumes plugged in or out while running: one hot-plug operation at a time. A volume the guest
      // unplugged itself is not plugged back behind its back; a newer attach request (tag) is.
      const have = new Set(vm.disks);
      const want = new Set(ctx.desiredDisks.map((d) => d.volumeId));
      const plug = ctx.desiredDisks.find((d) => !have.has(d.volumeId) && !vm.released?.some((r) => r.volumeId === d.volumeId && r.tag === d.tag));
      const unplug = vm.disks.find((v) => !want.has(v));
      if (plug || unplug) {
        const [kind, volumeId] = plug ? (['vm.attach', plug.volumeId] as const) : (['vm.detach', unplug!] as const);
        const opId = `${i.id}/${kind === 'vm.attach' ? 'attach' : 'detach'}/${volumeId}/${plug?.tag ?? 'x'}`;
        if (last?.opId === opId && last.state === 'failed') {
          st.message = `${kind === 'vm.attach' ? 'attaching' : 'detaching'} volume ${volumeId} failed: ${last.error ?? 'unknown error'}`;
          return { status: st };
        }
        if (!(last?.opId === opId && last.state === 'succeeded')) return send(opId, kind, volumeId);
      }
      st.observedGeneration = i.generation;
      st.message = undefined;
      return { status: st };
    }
    if (vm?.state === 'starting' || vm?.state === 'stopping') {
      st.phase = vm.state;
      return { status: st };
    }
    // Stopped or absent.
    if (ourStart && last.state === 'failed') {
      st.phase = 'failed';
      st.message = `start failed: ${last.error ?? 'unknown error'}`;
      st.observedGeneration = i.generation;
      return { status: st };
    }
    if (ourStart && last.state === 'succeeded') {
      // We started it for this generation and it is no longer running: the guest powered off or
      // QEMU died. Not restarted behind the user's back; `start` makes a new generation.
      const exit = vm?.lastExit;
      const clean = exit?.reason === 'guest-shutdown';
      st.phase = clean ? 'stopped' : 'failed';
      st.message = exit ? `VM exited at ${exit.at}: ${exit.reason}` : 'the VM is gone from its host';
      st.observedGeneration = i.generation;
      return { status: st };
    }
    if (ctx.disksWaiting) {
      if (st.phase !== 'failed') st.phase = 'scheduled';
      st.message = ctx.disksWaiting;
      return { status: st };
    }
    st.phase = 'starting';
    st.message = undefined;
    return send(ids.start, 'vm.start');
  }

  // Desired: stopped.
  if (vm?.state === 'running' || vm?.state === 'starting') {
    if (last?.opId === ids.stop && last.state === 'failed') {
      st.phase = 'failed';
      st.message = `stop failed: ${last.error ?? 'unknown error'}`;
      return { status: st };
    }
    st.phase = 'stopping';
    return send(ids.stop, 'vm.stop');
  }
  if (vm?.state === 'stopping') {
    st.phase = 'stopping';
    return { status: st };
  }
  // A failed start stays visible as failed until the user acts.
  if (st.phase !== 'failed' || st.observedGeneration !== i.generation) st.phase = 'stopped';
  st.observedGeneration = i.generation;
  return { status: st };
}
