/**
 * The agent's stream to the controller: the connection (hello, heartbeat, reports) and the
 * dispatch of what the controller sends: operations, console opens, credits and closes.
 */
import type { Logger } from 'pino';
import type { AgentMessage, AgentOp, ControllerMessage } from '../model/agent-protocol.ts';
import { ControllerConnection } from './connection.ts';
import { pacing, ReportPacer } from './report-pacer.ts';
import type { ConsoleLink, Consoles } from './consoles.ts';
import type { OpResultMessage } from './ops/dispatch.ts';

interface AgentStreamOptions {
  controllerUrl: string;
  tls: () => { ca: string; cert: string; key: string };
  log: Logger;
  hello: () => Promise<Extract<AgentMessage, { type: 'hello' }>>;
  /** Carries out an operation and gives its answer. */
  answer: (op: AgentOp) => Promise<OpResultMessage>;
  consoles: Consoles;
  /** The periodic check of the host (a sweep); its report is sent after it, even when it failed, if it changed or a heartbeat is due. */
  sweep: () => Promise<void>;
  report: () => Report;
}

type Report = Extract<AgentMessage, { type: 'report' }>;

export class AgentStream implements ConsoleLink {
  private readonly conn: ControllerConnection;
  private sweeper?: NodeJS.Timeout;
  /** Set per connection, from the controller's welcome. */
  private pacer?: ReportPacer;

  constructor(private readonly o: AgentStreamOptions) {
    this.conn = new ControllerConnection({
      controllerUrl: o.controllerUrl,
      tls: o.tls,
      log: o.log,
      hello: o.hello,
      onMessage: (m) => this.dispatch(m),
      onWelcome: (heartbeatMs, sweepMs) => this.beat(heartbeatMs, sweepMs),
      onDisconnect: () => o.consoles.closeAll(),
      onConsoleRoom: () => o.consoles.kick(),
    });
  }

  start(): void {
    this.conn.start();
  }

  send(m: AgentMessage): boolean {
    return this.conn.send(m);
  }

  /** Sends a report now (something changed). */
  sendReport(r: Report): void {
    if (this.send(r)) this.pacer?.markSent(r, Date.now());
  }

  sendConsole(m: Extract<AgentMessage, { type: 'console-data' }>): boolean {
    return this.conn.sendConsole(m);
  }

  get consoleRoom(): boolean {
    return this.conn.consoleRoom;
  }

  /** Dials again (with the credentials tls() gives then). */
  reconnect(reason: string): void {
    this.conn.reconnect(reason);
  }

  async close(): Promise<void> {
    await this.conn.close();
    // After the stream is closed: a welcome that arrived while it closed starts no new sweeps.
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private dispatch(m: ControllerMessage): void {
    switch (m.type) {
      case 'op':
        void this.o.answer(m.op).then((r) => this.send(r));
        break;
      case 'console-open':
        this.o.consoles.start(m);
        break;
      case 'console-credit':
        this.o.consoles.credit(m.streamId, m.bytes);
        break;
      case 'console-close':
        this.o.consoles.close(m.streamId);
        break;
      case 'welcome':
        break;
    }
  }

  private beat(askedHeartbeatMs: number, askedSweepMs: number): void {
    if (this.sweeper) clearInterval(this.sweeper);
    const { heartbeatMs, sweepMs } = pacing(askedHeartbeatMs, askedSweepMs);
    // A new connection: the hello carried everything, and the first sweep reports in full.
    const pacer = new ReportPacer(heartbeatMs, sweepMs);
    this.pacer = pacer;
    this.sweeper = setInterval(() => {
      void this.o
        .sweep()
        .catch((e: Error) => this.o.log.warn({ err: e.message }, 'periodic sweep failed'))
        .finally(() => {
          const r = this.o.report();
          if (pacer.due(r, Date.now())) this.sendReport(r);
        });
    }, sweepMs);
  }
}
