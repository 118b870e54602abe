/** A small client for the Outrig REST API, as the CLI (and the web console) use it. */
import { fetch, type RequestInit, type Response } from 'undici';
import { dispatcherFor } from '../common/https.ts';
import { inCliTerms, type FieldFlags } from './api-errors.ts';
import type { ApiCredentials } from './credentials.ts';
import { CliError } from './errors.ts';

interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export class ApiRequestError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    exitCode = 1,
  ) {
    super(message, exitCode);
  }
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly creds: ApiCredentials = {},
  ) {}

  async raw(
    method: string,
    path: string,
    init: { body?: unknown; headers?: Record<string, string>; rawBody?: RequestInit['body']; duplex?: 'half' } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    if (this.creds.token) headers.authorization = `Bearer ${this.creds.token}`;
    let body: RequestInit['body'] = init.rawBody;
    if (init.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.body);
    }
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers,
        body,
        dispatcher: dispatcherFor({ ca: this.creds.ca, cert: this.creds.cert, key: this.creds.key }),
        ...(init.duplex ? { duplex: init.duplex } : {}),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(why)) {
        // The server answered: blaming the network would send the user the wrong way.
        throw new CliError(
          `the Outrig API at ${this.baseUrl} answered, but its certificate is not signed by the CA this CLI trusts (${why}; CA: ${this.creds.caSource ?? 'none'}). ` +
            `On the controller's machine, use the same OUTRIG_DATA as 'outrig up' (its ca.crt and admin-token are there); elsewhere set OUTRIG_CA to the cluster's ca.crt.`,
        );
      }
      throw new CliError(
        `cannot reach the Outrig API at ${this.baseUrl} (${why}); is 'outrig up' or 'outrig controller' running? Set OUTRIG_URL or --url to point elsewhere.`,
      );
    }
    if (res.status === 401) {
      const text = await res.text();
      throw new ApiRequestError(
        401,
        'unauthorized',
        `the API refused these credentials (${text.slice(0, 200)}); the CLI sends $OUTRIG_TOKEN, or the admin token in $OUTRIG_DATA/admin-token, or the client certificate in OUTRIG_CERT/OUTRIG_KEY`,
      );
    }
    return res;
  }

  /** `fields`: the command's flags for the body's fields, to say a refusal in its terms (api-errors.ts). */
  async request<T>(method: string, path: string, body?: unknown, fields?: FieldFlags): Promise<T> {
    const res = await this.raw(method, path, { body });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const err = (parsed as ApiErrorBody | undefined)?.error;
      // A field the command maps was at fault: the user's flag was, a usage mistake (exit 2).
      const said = fields && err ? inCliTerms(err.details, fields) : undefined;
      if (said) throw new ApiRequestError(res.status, err!.code, said, err!.details, 2);
      throw new ApiRequestError(res.status, err?.code ?? 'http_error', err?.message ?? `HTTP ${res.status}: ${text.slice(0, 200)}`, err?.details);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body?: unknown, fields?: FieldFlags): Promise<T> {
    return this.request<T>('POST', path, body, fields);
  }
  patch<T>(path: string, body?: unknown, fields?: FieldFlags): Promise<T> {
    return this.request<T>('PATCH', path, body, fields);
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** GET that answers undefined for 404 instead of throwing. */
  async find<T>(path: string): Promise<T | undefined> {
    try {
      return await this.get<T>(path);
    } catch (e) {
      if (e instanceof ApiRequestError && e.status === 404) return undefined;
      throw e;
    }
  }
}
