/**
 * Bad requests against a running controller: each must be answered with the given status and a
 * message naming the problem, and must change nothing (the caller says what "everything" is).
 */
import assert from 'node:assert/strict';
import type { RunningController } from '../../src/server/index.ts';
import { apiSend } from './https.ts';

export function refusals(ctl: RunningController, state: () => Promise<unknown>) {
  const send = (method: string, path: string, body: unknown) => apiSend(ctl, method, path, body);
  async function refused(method: string, path: string, body: unknown, status: number, message: RegExp): Promise<void> {
    const before = await state();
    const r = await send(method, path, body);
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.match(r.body.error?.message ?? '', message);
    assert.deepEqual(await state(), before);
  }
  return { send, refused };
}
