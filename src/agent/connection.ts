/** The agent's stream to the controller: dials out, says hello, reconnects with backoff. */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { AGENT_STREAM_PATH, type AgentMessage, type ControllerMessage } from '../model/agent-protocol.ts';

export interface ConnectionOptions {
  controllerUrl: string;
  /** Mutual TLS: the pinned cluster CA, and this host's certificate and key (read at each dial, so renewals apply). */
  tls: () => { ca: string; cert: string; key: string };
  hello: () => Promise<AgentMessage>;
  onMessage: (m: ControllerMessage) => void;
  onWelcome: (heartbeatMs: number, sweepMs: number) => void;
  onDisconnect: () => void;
  /** The send queue has room for console data again. */
  onConsoleRoom?: () => void;
  log: Logger;
}

/**
 * Console bytes (as sent: base64 in JSON) this stream may have queued but not yet written to its
 * socket. Consoles wait beyond it, so an operation's answer or a report never queues behind more
 * than this much of a guest's output.
 */
const CONSOLE_QUEUE_MAX = 256 * 1024;

export class ControllerConnection {
  private ws?: WebSocket;
  private stopped = false;
  private backoffMs = 250;
  private retryTimer?: NodeJS.Timeout;
  private welcomed = false;
  private consoleQueued = 0;

  constructor(private readonly o: ConnectionOptions) {}

  get connected(): boolean {
    return this.welcomed && this.ws?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.dial();
  }

  private dial(): void {
    if (this.stopped) return;
    const url = this.o.controllerUrl.replace(/^http/, 'ws') + AGENT_STREAM_PATH;
    const t = this.o.tls();
    const ws = new WebSocket(url, { ca: t.ca, cert: t.cert, key: t.key, maxPayload: 16 * 1024 * 1024 });
    this.ws = ws;
    this.welcomed = false;
    this.consoleQueued = 0;
    ws.on('open', () => {
      void this.o
        .hello()
        .then((h) => ws.send(JSON.stringify(h)))
        .catch((e) => {
          this.o.log.error({ err: e }, 'could not build hello');
          ws.close();
        });
    });
    ws.on('message', (data) => {
      // A stream being closed by close() delivers nothing more (a late welcome would start a heartbeat).
      if (this.stopped) return;
      let msg: ControllerMessage;
      try {
        msg = JSON.parse(data.toString()) as ControllerMessage;
      } catch {
        return;
      }
      if (msg.type === 'welcome') {
        this.welcomed = true;
        this.backoffMs = 250;
        this.o.log.info({ controller: this.o.controllerUrl, hostId: msg.hostId }, 'connected to controller');
        this.o.onWelcome(msg.heartbeatMs, msg.sweepMs ?? msg.heartbeatMs);
        return;
      }
      this.o.onMessage(msg);
    });
    ws.on('unexpected-response', (_req, res) => {
      this.o.log.error(
        { status: res.statusCode, reason: res.headers['x-outrig-reason'] },
        res.statusCode === 401
          ? `controller refused this host's certificate: ${String(res.headers['x-outrig-reason'] ?? '')}`
          : 'controller refused the stream',
      );
      ws.terminate();
    });
    ws.on('error', (e) => this.o.log.debug({ err: e.message }, 'controller stream error'));
    ws.on('close', (code, reason) => {
      const was = this.welcomed;
      this.welcomed = false;
      if (this.ws === ws) this.ws = undefined;
      if (was) {
        this.o.log.warn({ code, reason: reason.toString() }, 'disconnected from controller');
        this.o.onDisconnect();
      } else if (reason.length) {
        this.o.log.error({ code, reason: reason.toString() }, 'controller closed the stream');
      }
      this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = this.backoffMs * (0.75 + Math.random() * 0.5);
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    this.retryTimer = setTimeout(() => this.dial(), delay);
  }

  /** Ends the stream; it is dialled again with what tls() gives then (a renewed certificate). */
  reconnect(reason: string): void {
    this.ws?.close(1000, reason);
  }

  send(m: AgentMessage): boolean {
    if (!this.connected) return false;
    this.ws!.send(JSON.stringify(m));
    return true;
  }

  /** Whether console data may be sent now (see CONSOLE_QUEUE_MAX). */
  get consoleRoom(): boolean {
    return this.connected && this.consoleQueued < CONSOLE_QUEUE_MAX;
  }

  /** Sends console data, counted against CONSOLE_QUEUE_MAX until the socket has taken it. */
  sendConsole(m: Extract<AgentMessage, { type: 'console-data' }>): boolean {
    const ws = this.ws;
    if (!this.connected || !ws) return false;
    const data = JSON.stringify(m);
    this.consoleQueued += data.length;
    ws.send(data, () => {
      if (this.ws !== ws) return;
      const wasFull = this.consoleQueued >= CONSOLE_QUEUE_MAX;
      this.consoleQueued -= data.length;
      if (wasFull && this.consoleQueued < CONSOLE_QUEUE_MAX) this.o.onConsoleRoom?.();
    });
    return true;
  }

  close(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000, 'agent shutting down');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1000).unref();
    });
  }
}
