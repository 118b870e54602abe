/** The console streams the controller has open on this host, by stream id (one ConsoleStream each). */
import type { AgentMessage, ControllerMessage } from '../model/agent-protocol.ts';
import { ConsoleStream } from './console.ts';

/** Where console data goes: the agent's stream to the controller, while there is one. */
export interface ConsoleLink {
  send(m: AgentMessage): boolean;
  sendConsole(m: Extract<AgentMessage, { type: 'console-data' }>): boolean;
  readonly consoleRoom: boolean;
}

export class Consoles {
  private readonly open = new Map<string, ConsoleStream>();

  constructor(
    private readonly o: {
      /** The VM's serial log, if the VM is on this host. */
      serialLog: (instanceId: string) => string | undefined;
      link: () => ConsoleLink | undefined;
    },
  ) {}

  start(m: Extract<ControllerMessage, { type: 'console-open' }>): void {
    const path = this.o.serialLog(m.instanceId);
    const end = (error?: string) => {
      this.open.get(m.streamId)?.stop();
      this.open.delete(m.streamId);
      this.o.link()?.send({ type: 'console-end', streamId: m.streamId, error });
    };
    if (!path) return end(`no VM ${m.instanceId} on this host`);
    if (this.open.has(m.streamId)) return;
    const c = new ConsoleStream({
      path,
      tailBytes: m.tailBytes,
      follow: m.follow,
      credit: m.window,
      send: (chunk) => this.o.link()?.sendConsole({ type: 'console-data', streamId: m.streamId, data: chunk.toString('base64') }),
      end,
      canSend: () => this.o.link()?.consoleRoom ?? false,
    });
    this.open.set(m.streamId, c);
    c.start().catch((e: Error) => end(e.message));
  }

  credit(streamId: string, bytes: number): void {
    this.open.get(streamId)?.grant(bytes);
  }

  close(streamId: string): void {
    this.open.get(streamId)?.stop();
    this.open.delete(streamId);
  }

  /** The stream went away: its consoles end with it. */
  closeAll(): void {
    for (const c of this.open.values()) c.stop();
    this.open.clear();
  }

  /** The stream has room for console data again. */
  kick(): void {
    for (const c of this.open.values()) c.kick();
  }
}
