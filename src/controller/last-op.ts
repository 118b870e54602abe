/**
 * Resources whose operations are recorded as `status.lastOp` (instances, volumes, snapshots): the
 * tracker's answer to the last operation is folded into that record, then the tracker forgets it.
 */
import type { Resource } from '../model/common.ts';
import type { LastOp } from '../model/instance.ts';
import type { ResourceRepository } from '../store/index.ts';
import type { Ctx } from './context.ts';

type WithLastOp = { lastOp?: LastOp; phase: string };

/** Returns the resource with the answer folded in (re-read), or as it was when there is none. */
export async function foldAnswer<S, St extends WithLastOp>(
  ctx: Ctx,
  repo: ResourceRepository<S, St>,
  res: Resource<S, St>,
): Promise<Resource<S, St> | undefined> {
  const last = res.status.lastOp;
  const answer = last?.state === 'sent' ? ctx.ops.answer(last.opId) : undefined;
  if (!last || !answer) return res;
  const at = ctx.clock.now().toISOString();
  await ctx.status.edit(repo, res.id, (st) =>
    st.lastOp?.opId === last.opId && st.lastOp.state === 'sent'
      ? { ...st, lastOp: { ...last, state: answer.ok ? 'succeeded' : 'failed', error: answer.error, at } }
      : null,
  );
  await ctx.ops.settle(last.opId);
  return repo.get(res.id);
}

/** Marks the planned operation failed without sending it (what it needs is not there). */
export async function failUnsent<S, St extends WithLastOp & { message?: string }>(
  ctx: Ctx,
  repo: ResourceRepository<S, St>,
  res: Resource<S, St>,
  send: { opId: string; kind: string },
  error: string,
): Promise<void> {
  await ctx.status.write(repo, res, (st) => {
    st.phase = 'failed';
    st.message = error;
    st.lastOp = { opId: send.opId, kind: send.kind, state: 'failed', error, at: ctx.clock.now().toISOString() };
  });
}
