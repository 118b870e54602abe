/**
 * Bad requests against a running controller: each must be answered with the given status and a
 * message naming the problem, and must change nothing (the caller says what "everything" is).
 */
import assert from 'node:assert/strict';
import type { RunningController } from '../../src/controller/index.ts';
import { tlsFetch } from './https.ts';

export function refusals(ctl: RunningController, state: () => Promise<unknown>) {
  async function send(method: string, path: string, body: unknown) {
    const res = await tlsFetch(ctl.url + path, { tls: { ca: ctl.trust.ca.certPem }, token: ctl.adminToken, method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as { error?: { code: string; message: string } } };
  }
  async function refused(method: string, path: string, body: unknown, status: number, message: RegExp): Promise<void> {
    const before = await state();
    const r = await send(method, path, body);
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.match(r.body.error?.message ?? '', message);
    assert.deepEqual(await state(), before);
  }
  return { send, refused };
}
