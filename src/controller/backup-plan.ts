/**
 * What the backup reconciler does next. Pure, like the volume planner: the Backup, its volume, the
 * host's view and the operation answer that arrived in; the next status and at most one operation out.
 */
import { Value } from 'typebox/value';
import { BackupResult, type Backup, type BackupStatus } from '../model/backup.ts';
import { setCondition } from '../model/conditions.ts';
import type { Volume } from '../model/volume.ts';
import type { OpResult } from './agent-hub.ts';
import type { HostView } from './volume-plan.ts';

export type BackupOpKind = 'backup.create' | 'backup.files' | 'backup.forget';

export function backupOpIds(b: Pick<Backup, 'id'>) {
  return { create: `${b.id}/create`, forget: `${b.id}/forget` };
}

export interface BackupPlanContext {
  volume?: Volume;
  host: HostView;
  /** The answer to the last operation, if one arrived since. */
  answer?: OpResult;
  lastOpInFlight: boolean;
  now: Date;
}

export interface BackupPlan {
  status: BackupStatus;
  send?: { opId: string; kind: BackupOpKind };
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
    // Still running: it ends first, and then its snapshot is forgotten, not left in the repository with no record.
    if (waitingOn && last.opId === ids.create) {
      st.message = `deleted while running: its snapshot is forgotten once the run on host ${hostName} ends`;
      return { status: st };
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
  if (st.phase === 'completed' || st.phase === 'failed') return { status: st };

  if (last?.opId === ids.create && last.state === 'succeeded') {
    st.phase = 'completed';
    st.completedAt = at;
    st.progress = undefined;
    st.message = undefined;
    return { status: st };
  }
  if (last?.opId === ids.create && last.state === 'failed') {
    st.phase = 'failed';
    st.completedAt = at;
    st.progress = undefined;
    st.message = `backup failed: ${last.error ?? 'unknown error'}`;
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
  if (!ctx.host.connected || waitingOn) return { status: st };
  // Not sent yet, or sent and lost with a dropped connection: (re)send; the agent answers a repeat from its journal.
  st.phase = 'running';
  st.startedAt ??= at;
  st.message = undefined;
  return send(ids.create, b.spec.volume ? 'backup.create' : 'backup.files');
}
