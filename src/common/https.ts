/** HTTPS requests with our own trust: a pinned CA (or none, for a first contact checked by other means) and an optional client certificate. */
import { Agent, request } from 'undici';

export interface TlsOptions {
  ca?: string;
  cert?: string;
  key?: string;
  /** Skip server verification: only for a first contact whose answer is verified another way (a signed, pinned ack). */
  insecure?: boolean;
}

const agents = new Map<string, Agent>();

/** One connection pool per trust setting. */
export function dispatcherFor(t: TlsOptions): Agent {
  const key = JSON.stringify([t.ca, t.cert, t.insecure]);
  let a = agents.get(key);
  if (!a) {
    a = new Agent({ connect: { ca: t.ca, cert: t.cert, key: t.key, rejectUnauthorized: !t.insecure } });
    agents.set(key, a);
  }
  return a;
}

interface HttpsResult {
  status: number;
  body: Buffer;
  json<T>(): T;
}

export async function httpsRequest(
  url: string,
  o: { method?: string; body?: Buffer | string; headers?: Record<string, string>; tls: TlsOptions; timeoutMs?: number },
): Promise<HttpsResult> {
  const res = await request(url, {
    method: (o.method ?? 'GET') as 'GET',
    body: o.body,
    headers: o.headers,
    dispatcher: dispatcherFor(o.tls),
    headersTimeout: o.timeoutMs ?? 30_000,
    bodyTimeout: o.timeoutMs ?? 30_000,
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, body, json: <T>() => JSON.parse(body.toString('utf8')) as T };
}
