/**
 * Simulated agents for bench:controller: each enrolls with a one-time token, opens its stream with
 * mutual TLS and speaks the real agent protocol (hello; a report when something changed, checked
 * every sweep, and at least every heartbeat; answers to operations), but carries nothing out: a
 * vm.start makes a VM "running" at once.
 * This measures the controller, not QEMU.
 */
import { once } from 'node:events';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { enroll } from '../src/agent/enroll.ts';
import { ReportPacer } from '../src/agent/report-pacer.ts';
import { VERSION } from '../src/common/version.ts';
import { AGENT_STREAM_PATH, PROTOCOL_VERSION, type AgentMessage, type ControllerMessage, type VmReport } from '../src/model/agent-protocol.ts';
import type { Inventory } from '../src/model/host.ts';
import { generateKeyPair } from '../src/pki/index.ts';

export interface Credentials {
  hostId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

export function inventory(): Inventory {
  return {
    hostname: 'sim',
    cpu: { model: 'sim', count: 64, sockets: 1, coresPerSocket: 64, flags: [] },
    memory: { totalMiB: 262_144 },
    numa: [{ id: 0, cpus: '0-63', memoryMiB: 262_144 }],
    nics: [],
    disks: [],
    pci: [],
    kvm: { usable: false, reason: 'simulated', checkedAt: new Date().toISOString() },
    accel: 'tcg',
    os: { kernel: 'sim', qemu: 'sim' },
  };
}

export async function enrollSimulated(url: string, caPem: string, hostId: string, token: string, log: Logger): Promise<Credentials> {
  const keys = generateKeyPair();
  const creds = await enroll({ identity: { hostId, name: hostId, keys }, mode: { kind: 'direct', controllerUrl: url, caPem }, bootstrapToken: token, log });
  return { hostId, certPem: creds.certPem, keyPem: keys.privateKey, caPem: creds.caPem };
}

export function runningVm(instanceId: string, generation: number, restartSeq: number): VmReport {
  const at = new Date().toISOString();
  return { instanceId, state: 'running', accel: 'tcg', forwards: [], generation, restartSeq, disks: [], bootedAt: at, readyAt: at };
}

type Report = Extract<AgentMessage, { type: 'report' }>;

/** One simulated agent's stream: answers every operation at once and reports its VMs as a real agent does. */
export class SimulatedAgent {
  readonly vms = new Map<string, VmReport>();
  starts = 0;
  private ws?: WebSocket;
  private timer?: NodeJS.Timeout;
  private pacer?: ReportPacer;
  private reportQueued = false;

  constructor(
    private readonly url: string,
    private readonly c: Credentials,
    private readonly onStart: () => void,
    /** The share of its VMs (0-1) whose guest memory use moves between two sweeps, as busy guests' does. */
    private readonly churn = 0,
  ) {}

  async connect(): Promise<void> {
    const ws = new WebSocket(this.url.replace(/^https/, 'wss') + AGENT_STREAM_PATH, { ca: this.c.caPem, cert: this.c.certPem, key: this.c.keyPem });
    this.ws = ws;
    ws.on('message', (d) => this.onMessage(JSON.parse(d.toString()) as ControllerMessage));
    ws.on('error', () => undefined);
    await once(ws, 'open');
    this.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      hostId: this.c.hostId,
      name: this.c.hostId,
      agentVersion: VERSION,
      inventory: inventory(),
      vms: [...this.vms.values()],
      volumes: [],
    });
  }

  private send(m: AgentMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  private onMessage(m: ControllerMessage): void {
    if (m.type === 'welcome') {
      clearInterval(this.timer);
      const sweepMs = m.sweepMs ?? m.heartbeatMs;
      const pacer = new ReportPacer(m.heartbeatMs, sweepMs);
      this.pacer = pacer;
      this.timer = setInterval(() => {
        if (this.churn > 0)
          for (const [id, vm] of this.vms)
            if (Math.random() < this.churn) this.vms.set(id, { ...vm, memory: { actualMiB: 64, usedMiB: 16 + Math.floor(Math.random() * 48) } });
        const r = this.report();
        if (pacer.due(r, Date.now())) this.sendReport(r);
      }, sweepMs);
      return;
    }
    if (m.type !== 'op') return;
    const op = m.op;
    if (op.kind === 'vm.start' || op.kind === 'vm.restart') {
      this.vms.set(op.instanceId, runningVm(op.instanceId, op.vm.generation, op.vm.restartSeq));
      this.starts++;
      this.onStart();
    } else if (op.kind === 'vm.delete') this.vms.delete(op.instanceId);
    else if (op.kind === 'vm.stop') {
      const vm = this.vms.get(op.instanceId);
      if (vm) this.vms.set(op.instanceId, { ...vm, state: 'stopped' });
    }
    this.send({ type: 'op-result', opId: op.opId, ok: true });
    this.reportSoon();
  }

  private report(): Report {
    return { type: 'report', vms: [...this.vms.values()], volumes: [] };
  }

  private sendReport(r: Report): void {
    this.send(r);
    this.pacer?.markSent(r, Date.now());
  }

  /** A VM changed: reported on the next tick, a burst of changes in one report, as the agent does. */
  private reportSoon(): void {
    if (this.reportQueued) return;
    this.reportQueued = true;
    setImmediate(() => {
      this.reportQueued = false;
      this.sendReport(this.report());
    });
  }

  close(): void {
    clearInterval(this.timer);
    this.ws?.close();
  }
}
