/**
 * The controller's end of the agent streams: authenticates agents, keeps one session per host,
 * sends operations and matches their answers, and relays serial consoles.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Compile } from 'typebox/compile';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import {
  AGENT_STREAM_PATH,
  AgentMessage,
  PROTOCOL_VERSION,
  type AgentOp,
  type ControllerMessage,
  type VmReport,
  type StorageReport,
  type VolumeReport,
} from '../../model/agent-protocol.ts';
import type { BackupProgress } from '../../model/backup.ts';
import { ConsoleRelay } from './console-relay.ts';
import { AgentNotConnectedError, CONSOLE_WINDOW, MAX_CONSOLES_PER_HOST, TooManyConsolesError, type Session } from './session.ts';
import type { ObjectRef } from '../runtime/reconciler.ts';
import type { OpResult } from '../runtime/op-tracker.ts';
import type { Peer, TrustService } from '../trust/service.ts';

export type { OpResult } from '../runtime/op-tracker.ts';
export { AgentNotConnectedError, TooManyConsolesError } from './session.ts';

type Hello = Extract<AgentMessage, { type: 'hello' }>;

export interface AgentHubEvents {
  /** Registers the host; a thrown error refuses the agent with its message. */
  onHello(msg: Hello): Promise<void>;
  /** A report arrived (it is also the heartbeat); `changed`: the instances, volumes and snapshots whose report changed. */
  onReport(hostId: string, changed: ObjectRef[], first: boolean): void;
  /**
   * The host an operation was sent to (the operation tracker's record, kept across restarts). A
   * host's answer counts only for its own operations: any host can name any operation id, and ids
   * are easy to guess (`<backup>/create`).
   */
  targetOf(opId: string): string | undefined;
  onOpResult(hostId: string, opId: string, result: OpResult): void;
  onOpProgress(hostId: string, opId: string, progress: BackupProgress): void;
  onDisconnect(hostId: string): void;
  /** An agent sent console data beyond the credit it was granted (the console was closed). */
  onConsoleOverrun?(hostId: string): void;
  /** An answer was dropped: it named an operation this controller sent to another host, or none it knows. */
  onAnswerDropped?(hostId: string, kind: 'op-result' | 'op-progress', reason: 'other-host' | 'unknown-operation'): void;
}

/** Every message is checked; compiled once, a report of 20 VMs takes ~5 µs instead of ~400 µs. */
const agentMessage = Compile(AgentMessage);

/** How long a peer that ignores our close frame may keep the socket. */
const CLOSE_GRACE_MS = 1000;

/**
 * How often an agent checks its host and reports what changed. Changes travel at once (or within a
 * sweep); the heartbeat only repeats an unchanged report, so it can be much longer.
 */
const AGENT_SWEEP_MS = 2000;

export class AgentHub {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 });
  private readonly sessions = new Map<string, Session>();

  constructor(
    /** Decides from the TLS peer whether it may open a stream, and as which host. */
    private readonly authenticate: (peer: Peer) => { hostId: string; serial: string } | { reason: string },
    private readonly trust: TrustService,
    private readonly heartbeatMs: number,
    private readonly events: AgentHubEvents,
    private readonly log: Logger,
    /** A stream whose hello has not arrived this long after it opened is closed. */
    private readonly helloTimeoutMs = 10_000,
    private readonly onHelloTimeout: () => void = () => undefined,
  ) {}

  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== AGENT_STREAM_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      const tls = req.socket as TLSSocket;
      const peer = this.trust.certs.identify(tls.authorized, tls.getPeerCertificate?.(), tls.getPeerX509Certificate?.());
      const auth = this.authenticate(peer);
      if ('reason' in auth) {
        this.log.warn({ remote: req.socket.remoteAddress, reason: auth.reason }, 'agent stream refused');
        socket.end(`HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nX-Outrig-Reason: ${auth.reason}\r\nContent-Length: 0\r\n\r\n`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, auth.hostId, auth.serial));
    });
  }

  /** Closes a host's stream at once (its certificate was revoked). */
  disconnect(hostId: string, reason: string): void {
    this.sessions.get(hostId)?.ws.close(4003, reason);
  }

  /** Closes at once every stream opened with a certificate that has been revoked since. */
  closeRevoked(): void {
    for (const s of this.sessions.values()) if (this.trust.certs.isRevoked(s.serial)) s.ws.close(4003, 'certificate revoked');
  }

  private accept(ws: WebSocket, certHostId: string, serial: string): void {
    let session: Session | undefined;
    const send = (m: ControllerMessage) => ws.send(JSON.stringify(m));
    // A valid certificate is not a reason to hold a socket: an agent says hello at once.
    const helloDeadline = setTimeout(() => {
      this.log.warn({ hostId: certHostId, ms: this.helloTimeoutMs }, 'agent stream sent no hello in time; closing');
      this.onHelloTimeout();
      ws.close(1008, `no hello within ${this.helloTimeoutMs} ms`);
      setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
    }, this.helloTimeoutMs);
    ws.once('close', () => clearTimeout(helloDeadline));
    ws.on('message', (data) => {
      // A renewal revokes the certificate this stream was opened with; the agent reconnects with
      // the new one, and a stream that stays on the old one ends here, at its next message.
      if (this.trust.certs.isRevoked(serial)) {
        ws.close(4003, 'certificate revoked');
        return;
      }
      const text = data.toString();
      // Most reports repeat the last one (nothing changed on the host): taken as a heartbeat without
      // being parsed, checked and compared again, which is most of what 500 agents cost an idle controller.
      if (session && text === session.lastReport) {
        this.events.onReport(session.hostId, [], false);
        return;
      }
      let msg: AgentMessage;
      try {
        msg = JSON.parse(text) as AgentMessage;
        if (!agentMessage.Check(msg)) throw new Error('message does not match the agent protocol');
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'agent sent an invalid message; closing');
        ws.close(1008, 'invalid message');
        return;
      }
      if (!session) {
        if (msg.type !== 'hello') {
          ws.close(1008, 'hello expected');
          return;
        }
        clearTimeout(helloDeadline);
        if (msg.protocol !== PROTOCOL_VERSION) {
          ws.close(1008, `protocol ${msg.protocol} unsupported; controller speaks ${PROTOCOL_VERSION}`);
          return;
        }
        if (msg.hostId !== certHostId) {
          ws.close(1008, `hello for ${msg.hostId} on the certificate of ${certHostId}`);
          return;
        }
        const hello = msg;
        ws.pause();
        this.events
          .onHello(hello)
          .then(() => {
            const old = this.sessions.get(hello.hostId);
            if (old) old.ws.close(4000, 'replaced by a newer connection');
            session = {
              hostId: hello.hostId,
              serial,
              ws,
              vms: new Map(hello.vms.map((v) => [v.instanceId, v])),
              volumes: new Map(hello.volumes.map((v) => [v.id, v])),
              storage: hello.storage,
              inflight: new Map(),
              consoles: new Map(),
            };
            this.sessions.set(hello.hostId, session);
            send({ type: 'welcome', hostId: hello.hostId, heartbeatMs: this.heartbeatMs, sweepMs: Math.min(this.heartbeatMs, AGENT_SWEEP_MS) });
            this.log.info({ hostId: hello.hostId, name: hello.name, serial, vms: hello.vms.length, volumes: hello.volumes.length }, 'agent connected');
            this.events.onReport(
              hello.hostId,
              [
                ...[...session.vms.keys()].map((key) => ({ kind: 'instance' as const, key })),
                ...[...session.volumes.keys()].map((key) => ({ kind: 'volume' as const, key })),
                ...hello.volumes.flatMap((v) => v.snapshots).map((key) => ({ kind: 'snapshot' as const, key })),
              ],
              true,
            );
            ws.resume();
          })
          .catch((e: Error) => {
            this.log.warn({ hostId: hello.hostId, err: e.message }, 'agent refused');
            ws.close(1008, e.message.slice(0, 120));
          });
        return;
      }
      this.handle(session, msg);
      if (msg.type === 'report') session.lastReport = text;
    });
    ws.on('close', () => {
      if (!session || this.sessions.get(session.hostId) !== session) return;
      this.sessions.delete(session.hostId);
      for (const p of session.inflight.values()) p.reject(new AgentNotConnectedError(session.hostId));
      for (const c of session.consoles.values()) c.push(null);
      this.log.info({ hostId: session.hostId }, 'agent disconnected');
      this.events.onDisconnect(session.hostId);
    });
    ws.on('error', (e) => this.log.warn({ err: e.message }, 'agent stream error'));
  }

  private handle(s: Session, msg: AgentMessage): void {
    switch (msg.type) {
      case 'report': {
        const changedVms = new Set<string>();
        const changedVolumes = new Set<string>();
        const diff = <T>(prev: Map<string, T>, next: Map<string, T>, changed: Set<string>) => {
          for (const [id, v] of next) if (JSON.stringify(v) !== JSON.stringify(prev.get(id))) changed.add(id);
          for (const id of prev.keys()) if (!next.has(id)) changed.add(id);
        };
        const vms = new Map(msg.vms.map((v) => [v.instanceId, v]));
        const volumes = new Map(msg.volumes.map((v) => [v.id, v]));
        diff(s.vms, vms, changedVms);
        diff(s.volumes, volumes, changedVolumes);
        // A VM plugging a volume in or out changes that volume's state too.
        for (const id of changedVms) {
          for (const d of [...(s.vms.get(id)?.disks ?? []), ...(vms.get(id)?.disks ?? [])]) changedVolumes.add(d);
        }
        // Snapshots appear and go inside their volume's report.
        const snaps = (m: Map<string, VolumeReport>) => new Set([...m.values()].flatMap((v) => v.snapshots));
        const before = snaps(s.volumes);
        const after = snaps(volumes);
        const changedSnaps = [...after].filter((id) => !before.has(id)).concat([...before].filter((id) => !after.has(id)));
        s.vms = vms;
        s.volumes = volumes;
        s.storage = msg.storage;
        const changed: ObjectRef[] = [
          ...[...changedVms].map((key) => ({ kind: 'instance' as const, key })),
          ...[...changedVolumes].map((key) => ({ kind: 'volume' as const, key })),
          ...changedSnaps.map((key) => ({ kind: 'snapshot' as const, key })),
        ];
        this.events.onReport(s.hostId, changed, false);
        break;
      }
      case 'op-result': {
        if (!this.answersOwn(s, msg)) break;
        const p = s.inflight.get(msg.opId);
        s.inflight.delete(msg.opId);
        const result = { ok: msg.ok, error: msg.error, result: msg.result };
        p?.resolve(result);
        this.events.onOpResult(s.hostId, msg.opId, result);
        break;
      }
      case 'op-progress':
        if (this.answersOwn(s, msg)) this.events.onOpProgress(s.hostId, msg.opId, msg.progress);
        break;
      case 'console-data': {
        const c = s.consoles.get(msg.streamId);
        if (!c || c.accept(Buffer.from(msg.data, 'base64'))) break;
        this.log.warn({ hostId: s.hostId, streamId: msg.streamId }, 'agent sent console data beyond its credit; console closed');
        this.events.onConsoleOverrun?.(s.hostId);
        s.consoles.delete(msg.streamId);
        c.destroy(new Error('the agent sent more console data than it was granted'));
        s.ws.send(JSON.stringify({ type: 'console-close', streamId: msg.streamId } satisfies ControllerMessage));
        break;
      }
      case 'console-end': {
        const c = s.consoles.get(msg.streamId);
        s.consoles.delete(msg.streamId);
        if (msg.error) c?.destroy(new Error(msg.error.slice(0, 500)));
        else c?.push(null);
        break;
      }
      case 'hello':
        s.ws.close(1008, 'duplicate hello');
        break;
    }
  }

  /** Whether the operation an answer names was sent to this host; if not, the answer is dropped, logged and counted. */
  private answersOwn(s: Session, msg: { type: 'op-result' | 'op-progress'; opId: string }): boolean {
    const target = this.events.targetOf(msg.opId);
    if (target === s.hostId) return true;
    const reason = target === undefined ? 'unknown-operation' : 'other-host';
    this.log.warn({ hostId: s.hostId, opId: msg.opId.slice(0, 200), kind: msg.type, reason }, 'dropped an answer for an operation not sent to this host');
    this.events.onAnswerDropped?.(s.hostId, msg.type, reason);
    return false;
  }

  isConnected(hostId: string): boolean {
    return this.sessions.has(hostId);
  }

  connectedHostIds(): string[] {
    return [...this.sessions.keys()];
  }

  /** The agent's last report for a VM, or undefined if the host has none (or is not connected). */
  vm(hostId: string, instanceId: string): VmReport | undefined {
    return this.sessions.get(hostId)?.vms.get(instanceId);
  }

  /** The host's report of a volume, or undefined if it has none (or is not connected). */
  volume(hostId: string, volumeId: string): VolumeReport | undefined {
    return this.sessions.get(hostId)?.volumes.get(volumeId);
  }

  /** The host's last storage report, or undefined (not connected, or an agent that does not report it). */
  storage(hostId: string): StorageReport | undefined {
    return this.sessions.get(hostId)?.storage;
  }

  /** Instances whose VMs on the host have the volume plugged in. */
  vmsWithDisk(hostId: string, volumeId: string): string[] {
    return [...(this.sessions.get(hostId)?.vms.values() ?? [])].filter((v) => v.disks.includes(volumeId)).map((v) => v.instanceId);
  }

  /** The instance whose guest unplugged the volume itself, per the host's VM reports, and the tag of the attach it undid. */
  releasedBy(hostId: string, volumeId: string): { instanceId: string; tag?: string } | undefined {
    for (const v of this.sessions.get(hostId)?.vms.values() ?? []) {
      const r = v.released?.find((x) => x.volumeId === volumeId);
      if (r) return { instanceId: v.instanceId, tag: r.tag };
    }
    return undefined;
  }

  isInFlight(hostId: string, opId: string): boolean {
    return this.sessions.get(hostId)?.inflight.has(opId) ?? false;
  }

  /** Sends an operation; resolves with the agent's answer, rejects if the connection drops first. */
  sendOp(hostId: string, op: AgentOp): Promise<OpResult> {
    const s = this.sessions.get(hostId);
    if (!s) return Promise.reject(new AgentNotConnectedError(hostId));
    const existing = s.inflight.get(op.opId);
    return new Promise<OpResult>((resolve, reject) => {
      if (existing) {
        // Same operation already on its way: share its answer.
        const prev = existing;
        s.inflight.set(op.opId, {
          resolve: (r) => (prev.resolve(r), resolve(r)),
          reject: (e) => (prev.reject(e), reject(e)),
        });
        return;
      }
      s.inflight.set(op.opId, { resolve, reject });
      s.ws.send(JSON.stringify({ type: 'op', op } satisfies ControllerMessage));
    });
  }

  /** Streams the VM's serial console, as fast as the reader takes it; destroy the stream to stop following. */
  openConsole(hostId: string, instanceId: string, opts: { follow: boolean; tailBytes: number }): ConsoleRelay {
    const s = this.sessions.get(hostId);
    if (!s) throw new AgentNotConnectedError(hostId);
    if (s.consoles.size >= MAX_CONSOLES_PER_HOST) throw new TooManyConsolesError(hostId);
    const streamId = randomBytes(8).toString('hex');
    const out = new ConsoleRelay(CONSOLE_WINDOW, (bytes) => {
      if (s.consoles.has(streamId) && s.ws.readyState === s.ws.OPEN)
        s.ws.send(JSON.stringify({ type: 'console-credit', streamId, bytes } satisfies ControllerMessage));
    });
    s.consoles.set(streamId, out);
    const msg: ControllerMessage = { type: 'console-open', streamId, instanceId, follow: opts.follow, tailBytes: opts.tailBytes, window: CONSOLE_WINDOW };
    s.ws.send(JSON.stringify(msg));
    out.on('close', () => {
      if (s.consoles.delete(streamId) && s.ws.readyState === s.ws.OPEN) {
        s.ws.send(JSON.stringify({ type: 'console-close', streamId } satisfies ControllerMessage));
      }
    });
    return out;
  }

  /** Open console streams: how many, the bytes held for their readers, and how many wait for a slow reader. */
  consoleStats(): { streams: number; bufferedBytes: number; awaitingCredit: number } {
    const all = [...this.sessions.values()].flatMap((s) => [...s.consoles.values()]);
    return { streams: all.length, bufferedBytes: all.reduce((n, c) => n + c.buffered, 0), awaitingCredit: all.filter((c) => c.awaitingCredit).length };
  }

  close(): void {
    for (const s of this.sessions.values()) s.ws.terminate();
    this.wss.close();
  }
}
