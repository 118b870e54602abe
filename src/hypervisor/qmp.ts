/**
 * QMP client: JSON commands and events over QEMU's UNIX monitor socket. The commands themselves,
 * typed, are in qmp-commands.ts.
 * Reference: https://www.qemu.org/docs/master/interop/qmp-spec.html
 */
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { qmpCapabilities } from './qmp-commands.ts';

export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly qmpClass: string,
    desc: string,
  ) {
    super(`QMP ${command}: ${qmpClass}: ${desc}`);
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/**
 * Emits 'event' (QmpEvent) and 'close' (the socket went away: QEMU exited or closed the monitor).
 */
export class QmpClient extends EventEmitter {
  private buf = '';
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private closed = false;
  readonly greeting: Promise<unknown>;

  private constructor(private readonly sock: Socket) {
    super();
    let greet!: (v: unknown) => void;
    let greetFail!: (e: Error) => void;
    this.greeting = new Promise((res, rej) => {
      greet = res;
      greetFail = rej;
    });
    // connect() awaits the greeting only once the socket is up; a connection refused before that
    // must not leave this rejection unhandled (Node would end the agent for it).
    this.greeting.catch(() => undefined);
    let greeted = false;
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if (!greeted && 'QMP' in msg) {
          greeted = true;
          greet(msg.QMP);
        } else if ('event' in msg) {
          this.emit('event', msg as unknown as QmpEvent);
        } else if ('id' in msg) {
          const p = this.pending.get(String(msg.id));
          if (!p) continue;
          this.pending.delete(String(msg.id));
          if ('error' in msg) {
            const err = msg.error as { class: string; desc: string };
            p.reject(new QmpError(p.command, err.class, err.desc));
          } else p.resolve(msg.return);
        }
      }
    });
    const onGone = (err?: Error) => {
      if (this.closed) return;
      this.closed = true;
      const e = err ?? new Error('QMP connection closed');
      if (!greeted) greetFail(e);
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
      this.emit('close');
    };
    sock.on('error', onGone);
    sock.on('close', () => onGone());
  }

  /** Connects, reads the greeting and leaves capability negotiation mode. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const sock = createConnection(path);
    const client = new QmpClient(sock);
    const timer = setTimeout(() => sock.destroy(new Error(`QMP connect to ${path} timed out`)), timeoutMs);
    try {
      await new Promise<void>((res, rej) => {
        sock.once('connect', res);
        sock.once('error', rej);
      });
      await client.greeting;
      await qmpCapabilities(client);
      return client;
    } catch (e) {
      sock.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('QMP connection closed'));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  close(): void {
    this.sock.destroy();
  }
}
