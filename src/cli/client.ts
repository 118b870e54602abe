/** A small client for the Outrig REST API, as the CLI (and the web console) use it. */
import { CliError } from './errors.ts';

export interface ApiErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export class ApiRequestError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message, 1);
  }
}

export class ApiClient {
  constructor(readonly baseUrl: string) {}

  async raw(method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; rawBody?: BodyInit; duplex?: 'half' } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...init.headers };
    let body: BodyInit | undefined = init.rawBody;
    if (init.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.body);
    }
    try {
      return await fetch(this.baseUrl + path, { method, headers, body, ...(init.duplex ? { duplex: init.duplex } : {}) } as RequestInit);
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
      throw new CliError(
        `cannot reach the Outrig API at ${this.baseUrl} (${cause}); is 'outrig up' or 'outrig controller' running? Set OUTRIG_URL or --url to point elsewhere.`,
      );
    }
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
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
      throw new ApiRequestError(res.status, err?.code ?? 'http_error', err?.message ?? `HTTP ${res.status}: ${text.slice(0, 200)}`);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
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
