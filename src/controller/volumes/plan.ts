/**
 * What the volume reconciler does next. Pure, like the instance planner: desired spec,
 * the host's report (its diskd's volumes and their snapshots) and the last operation in; the next
 * status and at most one operation out.
 */
import { getCondition, setCondition } from '../../model/conditions.ts';
import type { VolumeReport } from '../../model/agent-protocol.ts';
import type { LastOp } from '../../model/instance.ts';
import type { Volume, VolumeSpec, VolumeStatus } from '../../model/volume.ts';

type VolumeOpKind = 'volume.ensure' | 'volume.resize' | 'volume.delete';

export interface HostView {
  exists: boolean;
  connected: boolean;
  name?: string;
}

export function sent(opId: string, kind: string, now: Date): LastOp {
  return { opId, kind, state: 'sent', at: now.toISOString() };
}

export function volumeOpIds(v: Pick<Volume, 'id' | 'generation'>) {
  return { ensure: `${v.id}/ensure`, resize: `${v.id}/g${v.generation}/resize`, delete: `${v.id}/delete` };
}

export interface VolumePlanContext {
  host: HostView;
  /** The host's report of this volume; undefined when the (connected) host has none. */
  observed?: VolumeReport;
  /** Instance whose running VM has the volume plugged in, per the host's VM reports. */
  pluggedInto?: string;
  lastOpInFlight: boolean;
  now: Date;
}

interface VolumePlan {
  status: VolumeStatus;
  send?: { opId: string; kind: VolumeOpKind };
  remove?: boolean;
}

/**
 * A volume the guest of its instance unplugged itself (it powered off the PCIe slot) is detached in
 * its spec, as a guest that powers its VM off stops its instance: it is not plugged back behind the
 * guest's back. Only the attach request that plugged it in is undone (the tag is the volume's
 * generation then), never a newer one. Returns the change to write, or undefined.
 */
export function detachReleased(
  v: Volume,
  released: { instanceId: string; tag?: string } | undefined,
  now: Date,
): { spec: VolumeSpec; status: VolumeStatus } | undefined {
  if (!released || v.spec.attachedTo !== released.instanceId || released.tag !== `g${v.generation}`) return undefined;
  const message = `the guest of instance ${released.instanceId} unplugged it (powered off its slot); it was detached`;
  return {
    spec: { ...v.spec, attachedTo: undefined },
    status: { ...v.status, conditions: setCondition(v.status.conditions, { type: 'GuestReleased', status: 'True', reason: 'GuestUnplugged', message }, now) },
  };
}

export function planVolume(v: Volume, ctx: VolumePlanContext): VolumePlan {
  const st: VolumeStatus = { ...v.status, conditions: [...v.status.conditions] };
  const ids = volumeOpIds(v);
  const last = st.lastOp;
  const send = (opId: string, kind: VolumeOpKind): VolumePlan => {
    st.lastOp = sent(opId, kind, ctx.now);
    return { status: st, send: { opId, kind } };
  };
  const waitingOn = last?.state === 'sent' && ctx.lastOpInFlight;

  if (st.phase === 'deleting') {
    if (!st.hostId || !ctx.host.exists) return { status: st, remove: true };
    if (!ctx.host.connected) {
      st.message = `waiting for host ${ctx.host.name ?? st.hostId} to reconnect to delete the volume`;
      return { status: st };
    }
    if (last?.opId === ids.delete) {
      if (last.state === 'succeeded' && !ctx.observed) return { status: st, remove: true };
      if (waitingOn) return { status: st };
      if (last.state === 'failed') {
        st.message = `delete failed: ${last.error ?? 'unknown error'}`;
        return { status: st };
      }
    }
    return send(ids.delete, 'volume.delete');
  }
  if (!st.hostId) return { status: st };
  st.conditions = setCondition(
    st.conditions,
    ctx.host.connected
      ? { type: 'HostConnected', status: 'True', reason: 'Connected', message: '' }
      : { type: 'HostConnected', status: 'False', reason: 'AgentDisconnected', message: `the agent of host ${ctx.host.name ?? st.hostId} is not connected` },
    ctx.now,
  );
  if (!ctx.host.connected) return { status: st };
  st.attachedTo = ctx.pluggedInto;
  if (ctx.pluggedInto && getCondition(st.conditions, 'GuestReleased')?.status === 'True') {
    st.conditions = setCondition(st.conditions, { type: 'GuestReleased', status: 'False', reason: 'Plugged', message: '' }, ctx.now);
  }

  const o = ctx.observed;
  if (!o) {
    if (waitingOn) {
      st.phase = 'creating';
      return { status: st };
    }
    if (last?.opId === ids.ensure && last.state === 'failed') {
      st.phase = 'failed';
      st.message = `create failed: ${last.error ?? 'unknown error'}`;
      return { status: st };
    }
    if (last?.opId === ids.ensure && last.state === 'succeeded' && st.phase !== 'creating') {
      st.phase = 'failed';
      st.message = `the volume is gone from host ${ctx.host.name ?? st.hostId}`;
      return { status: st };
    }
    st.phase = 'creating';
    return send(ids.ensure, 'volume.ensure');
  }
  st.sizeBytes = o.sizeBytes;
  st.usedBytes = o.usedBytes;
  st.progress = undefined;
  st.phase = v.spec.attachedTo || ctx.pluggedInto ? 'in-use' : 'available';
  st.message = undefined;
  if (o.sizeBytes < v.spec.sizeBytes && !waitingOn) {
    if (last?.opId === ids.resize && last.state === 'failed') {
      st.message = `resize failed: ${last.error ?? 'unknown error'}`;
      return { status: st };
    }
    return send(ids.resize, 'volume.resize');
  }
  st.observedGeneration = v.generation;
  return { status: st };
}
