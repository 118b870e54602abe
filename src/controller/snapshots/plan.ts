/**
 * What the snapshot reconciler does next. Pure: the snapshot, its volume, the host's report of the
 * volume (with its snapshots) and the last operation in; the next status and at most one operation out.
 */
import type { VolumeReport } from '../../model/agent-protocol.ts';
import type { Snapshot, SnapshotStatus, Volume } from '../../model/volume.ts';
import { sent, type HostView } from '../volumes/plan.ts';

type SnapshotOpKind = 'snapshot.ensure' | 'snapshot.delete';

function snapshotOpIds(s: Pick<Snapshot, 'id'>) {
  return { ensure: `${s.id}/ensure`, delete: `${s.id}/delete` };
}

interface SnapshotPlanContext {
  /** The snapshotted volume, if it still exists. */
  volume?: Volume;
  host: HostView;
  /** The volume's report, from its host. */
  observedVolume?: VolumeReport;
  lastOpInFlight: boolean;
  now: Date;
}

interface SnapshotPlan {
  status: SnapshotStatus;
  send?: { opId: string; kind: SnapshotOpKind };
  remove?: boolean;
}

export function planSnapshot(s: Snapshot, ctx: SnapshotPlanContext): SnapshotPlan {
  const st: SnapshotStatus = { ...s.status, conditions: [...s.status.conditions] };
  const ids = snapshotOpIds(s);
  const last = st.lastOp;
  const waitingOn = last?.state === 'sent' && ctx.lastOpInFlight;
  const send = (opId: string, kind: SnapshotOpKind): SnapshotPlan => {
    st.lastOp = sent(opId, kind, ctx.now);
    return { status: st, send: { opId, kind } };
  };
  const present = !!ctx.observedVolume?.snapshots.includes(s.id);

  if (st.phase === 'deleting') {
    if (!ctx.volume || !ctx.volume.status.hostId || !ctx.host.exists) return { status: st, remove: true };
    if (!ctx.host.connected) return { status: st };
    if (!ctx.observedVolume || !present) {
      if (last?.opId === ids.delete || !st.hostId) return { status: st, remove: true };
    }
    if (last?.opId === ids.delete) {
      if (waitingOn) return { status: st };
      if (last.state === 'failed') {
        st.message = `delete failed: ${last.error ?? 'unknown error'}`;
        return { status: st };
      }
      if (last.state === 'succeeded' && !present) return { status: st, remove: true };
    }
    return send(ids.delete, 'snapshot.delete');
  }
  const vol = ctx.volume;
  if (!vol) {
    st.phase = 'failed';
    st.message = 'the volume is gone';
    return { status: st };
  }
  st.hostId = vol.status.hostId;
  if (!vol.status.hostId || !ctx.observedVolume) {
    st.phase = 'pending';
    st.message = `waiting for volume ${vol.name} to exist`;
    return { status: st };
  }
  if (!ctx.host.connected) return { status: st };
  if (present) {
    st.phase = 'ready';
    st.message = undefined;
    st.sizeBytes ??= ctx.observedVolume.sizeBytes;
    return { status: st };
  }
  if (waitingOn) {
    st.phase = 'creating';
    return { status: st };
  }
  if (last?.opId === ids.ensure && last.state === 'failed') {
    st.phase = 'failed';
    st.message = `snapshot failed: ${last.error ?? 'unknown error'}`;
    return { status: st };
  }
  st.phase = 'creating';
  return send(ids.ensure, 'snapshot.ensure');
}
