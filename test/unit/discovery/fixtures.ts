/** A controller identity (CA, node certificate) and a responder over it, for discovery tests. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { seal, type Discover, type DropReason, type Policy } from '../../../src/discovery/messages.ts';
import type { Capabilities } from '../../../src/discovery/policy.ts';
import { DiscoveryResponder } from '../../../src/discovery/responder.ts';
import { ClusterCa, generateKeyPair, publicKeyB64, type KeyPairPem } from '../../../src/pki/index.ts';

export const der = (pem: string) => Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

export interface TestController {
  ca: ClusterCa;
  nodeKey: string;
  nodeCertDer: Buffer;
  responder: DiscoveryResponder;
  drops: DropReason[];
  answers: string[];
  /** How many nonces the responder has issued. */
  nonces: () => number;
}

export async function testController(
  dir: string,
  o: { caps?: Partial<Capabilities>; now?: () => number; answerDeclines?: boolean; ratePerSource?: number; log?: Logger } = {},
): Promise<TestController> {
  const ca = await ClusterCa.loadOrCreate(join(dir, `ca-${randomBytes(4).toString('hex')}`));
  const pair = generateKeyPair();
  const node = await ca.issue('server', { name: 'ctl-a', ips: ['127.0.0.1'] }, pair.publicKey, 1);
  const drops: DropReason[] = [];
  const answers: string[] = [];
  let nonces = 0;
  const caps: Capabilities = {
    cluster: 'outrig',
    clusterLabels: {},
    version: '0.1.0',
    features: ['mtls', 'kvm'],
    tenants: ['default'],
    networks: [],
    ...o.caps,
  };
  const responder = new DiscoveryResponder({
    // Loopback only, on a free port: tests never listen for or send to the machine's real networks.
    address: '127.0.0.1',
    port: 0,
    answerDeclines: o.answerDeclines,
    capabilities: async () => caps,
    endpoint: () => 'https://127.0.0.1:1',
    issueNonce: () => (nonces++, randomBytes(16).toString('base64')),
    caCertDer: der(ca.certPem),
    nodeCertDer: der(node.pem),
    nodeKeyPem: pair.privateKey,
    onDrop: (r) => drops.push(r),
    onAnswer: (k) => answers.push(k),
    now: o.now,
    ratePerSource: o.ratePerSource,
    log: o.log,
  });
  return { ca, nodeKey: pair.privateKey, nodeCertDer: der(node.pem), responder, drops, answers, nonces: () => nonces };
}

export function testHost(hostId = 'host-1'): {
  hostId: string;
  keys: KeyPairPem;
  discover(o?: { policy?: Policy; challenge?: string; sentAt?: number }): { msg: Buffer; body: Discover };
} {
  const keys = generateKeyPair();
  return {
    hostId,
    keys,
    discover(o = {}) {
      const body: Discover = {
        type: 'discover',
        hostId,
        name: hostId,
        publicKey: publicKeyB64(keys.publicKey),
        challenge: o.challenge ?? randomBytes(16).toString('base64'),
        sentAt: o.sentAt ?? Date.now(),
        policy: o.policy ?? {},
        labels: {},
      };
      return { msg: seal(body, keys.privateKey), body };
    },
  };
}
