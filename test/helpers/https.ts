/** fetch with our own TLS trust and credentials, as the CLI and agents use it. */
import { fetch, type RequestInit, type Response } from 'undici';
import { dispatcherFor, type TlsOptions } from '../../src/common/https.ts';
import type { RunningController } from '../../src/server/index.ts';

export function tlsFetch(
  url: string,
  o: { tls: TlsOptions; token?: string; method?: string; headers?: Record<string, string>; body?: RequestInit['body'] },
): Promise<Response> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  return fetch(url, { method: o.method ?? 'GET', headers, body: o.body, dispatcher: dispatcherFor(o.tls) });
}

export type ApiAnswer<T> = { status: number; body: { error?: { code: string; message: string; details?: unknown } } & Partial<T> };

/** A request to the controller's API as its operator: the status and the body, error answers included. */
export async function apiSend<T = object>(
  ctl: Pick<RunningController, 'url' | 'trust' | 'adminToken'>,
  method: string,
  path: string,
  body?: unknown,
): Promise<ApiAnswer<T>> {
  const res = await tlsFetch(ctl.url + path, {
    tls: { ca: ctl.trust.ca.certPem },
    token: ctl.adminToken,
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}
