/**
 * What the backup reconciler does next. Pure, like the volume planner: the Backup, its volume, the
 * host's view and the operation answer that arrived in; the next status and at most one operation out.
 */
import { Value } from 'typebox/value';
import { BackupResult, backupSettled, type Backup, type BackupStatus } from '../../model/backup.ts';
import { setCondition } from '../../model/conditions.ts';
import type { Volume } from '../../model/volume.ts';
import type { OpResult } from '../agents/hub.ts';
import type { HostView } from '../volumes/plan.ts';

type BackupOpKind = 'backup.create' | 'backup.files' | 'backup.forget';

function backupOpIds(b: Pick<Backup, 'id'>) {
  return { create: `${b.id}/create`, forget: `${b.id}/forget`, cancel: `${b.id}/cancel` };
}

export interface BackupPlanContext {
  volume?: Volume;
  host: HostView;
  /** The answer to the last operation, if one arrived since. */
  answer?: OpResult;
  lastOpInFlight: boolean;
  now: Date;
}

interface BackupPlan {
  status: BackupStatus;
  send?: { opId: string; kind: BackupOpKind };
  /** Tell the agent to stop this running operation (after `send`, when both are given). */
  cancel?: { opId: string; target: string };
  remove?: boolean;
}

export function planBackup(b: Backup, ctx: BackupPlanContext): BackupPlan {
  const st: BackupStatus = structuredClone(b.status);
  const ids = backupOpIds(b);
  const at = ctx.now.toISOString();
  if (st.lastOp?.state === 'sent' && ctx.answer) {
    st.lastOp = { ...st.lastOp, state: ctx.answer.ok ? 'succeeded' : 'failed', error: ctx.answer.error, at };
    if (ctx.answer.ok && st.lastOp.opId === ids.create) {
      if (Value.Check(BackupResult, ctx.answer.result)) {
        st.result = ctx.answer.result;
        // A host's disk: its size is known only now, and a volume rebuilt from it needs it.
        st.sizeBytes ??= st.result.diskBytes;
      } else st.lastOp = { ...st.lastOp, state: 'failed', error: 'the agent answered without a usable backup result' };
    }
  }
  const last = st.lastOp;
  const waitingOn = last?.state === 'sent' && ctx.lastOpInFlight;
  const send = (opId: string, kind: BackupOpKind): BackupPlan => {
    st.lastOp = { opId, kind, state: 'sent', at };
    return { status: st, send: { opId, kind } };
  };
  const hostName = ctx.host.name ?? st.hostId;

  if (st.phase === 'deleting') {
    // Still running: it is told to stop, and if it completes all the same, its snapshot is forgotten, not left in the repository with no record.
    if (waitingOn && last.opId === ids.create) {
      st.message = `deleted while running: the run on host ${hostName} is stopped, then the record goes`;
      if (!ctx.host.connected || st.cancel?.sentAt) return { status: st };
      st.cancel = { requestedAt: st.cancel?.requestedAt ?? at, sentAt: at };
      return { status: st, cancel: { opId: ids.cancel, target: ids.create } };
    }
    // Nothing in the repository yet (or no host left to reach it): only the record goes.
    if (!st.result || !st.hostId || !ctx.host.exists) return { status: st, remove: true };
    if (last?.opId === ids.forget && last.state === 'succeeded') return { status: st, remove: true };
    if (!ctx.host.connected) {
      st.message = `waiting for host ${hostName} to reconnect to forget the snapshot`;
      return { status: st };
    }
    if (waitingOn) return { status: st };
    if (last?.opId === ids.forget && last.state === 'failed') {
      st.message = `forgetting the snapshot failed: ${last.error ?? 'unknown error'}`;
      return { status: st };
    }
    return send(ids.forget, 'backup.forget');
  }
  if (backupSettled(st.phase)) return { status: st };

  if (last?.opId === ids.create && last.state === 'succeeded') {
    st.phase = 'completed';
    st.completedAt = at;
    st.progress = undefined;
    // The run ended before the agent heard the cancel: the snapshot is whole, and kept.
    st.message = st.cancel ? 'the backup completed before the cancel reached it; delete it if it is not wanted' : undefined;
    return { status: st };
  }
  if (last?.opId === ids.create && last.state === 'failed') {
    st.phase = st.cancel ? 'cancelled' : 'failed';
    st.completedAt = at;
    st.progress = undefined;
    st.message = st.cancel
      ? 'cancelled on request; nothing of it is in the repository but packs prune removes'
      : `backup failed: ${last.error ?? 'unknown error'}`;
    return { status: st };
  }
  // Cancelled before any run was sent: nothing to stop.
  if (st.cancel && last?.opId !== ids.create) {
    st.phase = 'cancelled';
    st.completedAt = at;
    st.message = 'cancelled on request before it started';
    return { status: st };
  }
  if (!st.hostId && b.spec.host) st.hostId = b.spec.host;
  if (!st.hostId) {
    const v = ctx.volume;
    if (!v) {
      st.phase = 'failed';
      st.message = 'the volume is gone';
      return { status: st };
    }
    if (!v.status.hostId || (v.status.phase !== 'available' && v.status.phase !== 'in-use')) {
      st.phase = 'pending';
      st.message = `waiting for volume ${v.name} to be ready (it is ${v.status.phase})`;
      return { status: st };
    }
    st.hostId = v.status.hostId;
    st.volumeName = v.name;
    st.sizeBytes = v.status.sizeBytes ?? v.spec.sizeBytes;
  }
  st.conditions = setCondition(
    st.conditions,
    ctx.host.connected
      ? { type: 'HostConnected', status: 'True', reason: 'Connected', message: '' }
      : { type: 'HostConnected', status: 'False', reason: 'AgentDisconnected', message: `the agent of host ${hostName} is not connected` },
    ctx.now,
  );
  if (!ctx.host.exists) {
    st.phase = 'failed';
    st.message = `host ${hostName} is gone`;
    return { status: st };
  }
  if (!ctx.host.connected) return { status: st };
  const stop = { opId: ids.cancel, target: ids.create };
  if (waitingOn) {
    if (!st.cancel || st.cancel.sentAt) return { status: st };
    st.cancel = { ...st.cancel, sentAt: at };
    st.message = `cancelling: host ${hostName} was told to stop the run`;
    return { status: st, cancel: stop };
  }
  // Not sent yet, or sent and lost with a dropped connection: (re)send; the agent answers a repeat from its journal.
  // A run being cancelled is sent again too: the agent may still be running it, and the cancel follows it.
  st.phase = 'running';
  st.startedAt ??= at;
  st.message = undefined;
  const plan = send(ids.create, b.spec.volume ? 'backup.create' : 'backup.files');
  if (!st.cancel) return plan;
  st.cancel = { ...st.cancel, sentAt: at };
  st.message = `cancelling: host ${hostName} was told to stop the run`;
  return { ...plan, cancel: stop };
}
