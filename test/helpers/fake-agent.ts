/**
 * A host whose agent stream the test plays: enrolled with a one-time token, it says hello with a
 * made-up inventory (and disk space, if given) and records what the controller sends. Nothing it
 * is sent is carried out, so what lands on it stays as placement left it: a second host for
 * placement tests without a second real agent.
 */
import { once } from 'node:events';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { enroll } from '../../src/agent/enroll.ts';
import { VERSION } from '../../src/common/version.ts';
import type { RunningController } from '../../src/server/index.ts';
import { AGENT_STREAM_PATH, PROTOCOL_VERSION, type AgentMessage, type ControllerMessage, type StorageReport } from '../../src/model/agent-protocol.ts';
import type { Inventory } from '../../src/model/host.ts';
import { generateKeyPair } from '../../src/pki/index.ts';
import { waitUntil } from './wait.ts';

export interface FakeAgent {
  received: ControllerMessage[];
  send(m: AgentMessage): void;
  close(): void;
}

export function fakeInventory(memoryMiB = 4096): Inventory {
  return {
    hostname: 'fake',
    cpu: { model: 'test', count: 2, sockets: 1, coresPerSocket: 2, flags: [] },
    memory: { totalMiB: memoryMiB },
    numa: [{ id: 0, cpus: '0-1', memoryMiB }],
    nics: [],
    disks: [],
    pci: [],
    kvm: { usable: false, reason: 'test', checkedAt: new Date().toISOString() },
    accel: 'tcg',
    os: { kernel: 'test', qemu: 'test' },
  };
}

export async function fakeAgent(
  ctl: RunningController,
  hostId: string,
  log: Logger,
  o: { memoryMiB?: number; storage?: StorageReport } = {},
): Promise<FakeAgent> {
  const { token } = await ctl.trust.addRule(`${hostId}-rule`, { kind: 'token' });
  const keys = generateKeyPair();
  const creds = await enroll({
    identity: { hostId, name: hostId, keys },
    mode: { kind: 'direct', controllerUrl: ctl.url, caPem: ctl.trust.ca.certPem },
    bootstrapToken: token,
    log,
  });
  const ws = new WebSocket(ctl.url.replace(/^https/, 'wss') + AGENT_STREAM_PATH, { ca: creds.caPem, cert: creds.certPem, key: keys.privateKey });
  const received: ControllerMessage[] = [];
  ws.on('message', (d) => received.push(JSON.parse(d.toString()) as ControllerMessage));
  await once(ws, 'open');
  const send = (m: AgentMessage) => ws.send(JSON.stringify(m));
  send({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    hostId,
    name: hostId,
    agentVersion: VERSION,
    inventory: fakeInventory(o.memoryMiB),
    vms: [],
    volumes: [],
    storage: o.storage,
  });
  await waitUntil(`${hostId} welcomed`, () => received.some((m) => m.type === 'welcome'));
  return { received, send, close: () => ws.close() };
}
