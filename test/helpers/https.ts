/** fetch with our own TLS trust and credentials, as the CLI and agents use it. */
import { fetch, type RequestInit, type Response } from 'undici';
import { dispatcherFor, type TlsOptions } from '../../src/common/https.ts';

export function tlsFetch(url: string, o: { tls: TlsOptions; token?: string; method?: string; headers?: Record<string, string>; body?: RequestInit['body'] }): Promise<Response> {
  const headers: Record<string, string> = { ...o.headers };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  return fetch(url, { method: o.method ?? 'GET', headers, body: o.body, dispatcher: dispatcherFor(o.tls) });
}
