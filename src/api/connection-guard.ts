/**
 * Limits on the controller's TLS port, which anyone who can reach it may connect to: how many
 * connections one source address and everyone together may hold, how long a TLS handshake may
 * take, and how long a connection may sit without a request (before its first one, and between
 * keep-alive requests). Without them, idle sockets that never authenticate held the port for
 * minutes. The agent stream's hello deadline is the agent hub's.
 */
import type { IncomingMessage } from 'node:http';
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';

export interface ConnectionLimits {
  /** Connections open at once, from everyone. */
  maxConnections: number;
  /** Connections open at once from one source address. */
  maxConnectionsPerAddress: number;
  /** From accepting a TCP connection to the end of its TLS handshake. */
  handshakeTimeoutMs: number;
  /** Without a request: after the handshake, and between keep-alive requests. */
  idleTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 1024,
  // Room for an `outrig up` machine (agent, CLI, browser) or a small office behind one NAT address.
  maxConnectionsPerAddress: 128,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 15_000,
};

type ClosedReason = 'limit-total' | 'limit-address' | 'handshake-timeout' | 'idle-timeout';

/** Who holds how many connections, and whether one more may come. Pure. */
export class ConnectionCounter {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly limits: Pick<ConnectionLimits, 'maxConnections' | 'maxConnectionsPerAddress'>) {}

  /** Takes a slot for a new connection from `address`, or says which limit refuses it. */
  admit(address: string): 'ok' | 'limit-total' | 'limit-address' {
    const mine = this.byAddress.get(address) ?? 0;
    if (mine >= this.limits.maxConnectionsPerAddress) return 'limit-address';
    if (this.total >= this.limits.maxConnections) return 'limit-total';
    this.byAddress.set(address, mine + 1);
    this.total++;
    return 'ok';
  }

  release(address: string): void {
    const mine = this.byAddress.get(address);
    if (!mine) return;
    if (mine === 1) this.byAddress.delete(address);
    else this.byAddress.set(address, mine - 1);
    this.total--;
  }

  get open(): number {
    return this.total;
  }
}

/** Refusals under a flood are counted every time but logged at most once a minute per reason. */
const LOG_EVERY_MS = 60_000;

/**
 * Applies the limits to the API's server. The handshake timeout itself is a TLS option
 * (`handshakeTimeout`) given where the server is made; here it is only counted.
 */
export function guardConnections(server: Server, limits: ConnectionLimits, o: { log: Logger; onClosed: (reason: ClosedReason) => void }): void {
  const counter = new ConnectionCounter(limits);
  const lastLogged = new Map<ClosedReason, number>();
  const closed = (reason: ClosedReason, address: string | undefined) => {
    o.onClosed(reason);
    const now = Date.now();
    const quiet = now - (lastLogged.get(reason) ?? 0) < LOG_EVERY_MS;
    if (!quiet) lastLogged.set(reason, now);
    o.log[quiet ? 'debug' : 'warn']({ reason, address, open: counter.open, limits }, `connection closed: ${reason}`);
  };
  server.on('connection', (raw: Socket) => {
    const address = raw.remoteAddress ?? 'unknown';
    const verdict = counter.admit(address);
    if (verdict !== 'ok') {
      raw.destroy();
      closed(verdict, address);
      return;
    }
    raw.once('close', () => counter.release(address));
  });
  server.on('tlsClientError', (e: NodeJS.ErrnoException, s: TLSSocket) => {
    if (e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') closed('handshake-timeout', s.remoteAddress);
  });
  // Before its first request a connection has no request of its own to time out; keep-alive
  // waits between requests are the server's keepAliveTimeout, set to the same value.
  const waiting = new WeakMap<object, NodeJS.Timeout>();
  server.on('secureConnection', (s: TLSSocket) => {
    const address = s.remoteAddress;
    const t = setTimeout(() => {
      s.destroy();
      closed('idle-timeout', address);
    }, limits.idleTimeoutMs);
    waiting.set(s, t);
    s.once('close', () => clearTimeout(t));
  });
  const served = (req: IncomingMessage) => {
    clearTimeout(waiting.get(req.socket));
    waiting.delete(req.socket);
  };
  server.on('request', served);
  server.on('upgrade', served);
}
