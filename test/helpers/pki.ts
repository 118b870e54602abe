/** A throwaway cluster CA with server and host certificates, for tests that need real TLS. */
import { join } from 'node:path';
import { ClusterCa, generateKeyPair } from '../../src/pki/index.ts';

export interface TestPki {
  ca: ClusterCa;
  server: { key: string; cert: string };
  host(hostId: string): Promise<{ key: string; cert: string }>;
}

export async function testPki(dir: string): Promise<TestPki> {
  const ca = await ClusterCa.loadOrCreate(join(dir, 'pki'));
  const pair = generateKeyPair();
  const server = await ca.issue('server', { name: 'test', ips: ['127.0.0.1'], dnsNames: ['localhost'] }, pair.publicKey, 1);
  return {
    ca,
    server: { key: pair.privateKey, cert: server.pem },
    async host(hostId) {
      const p = generateKeyPair();
      return { key: p.privateKey, cert: (await ca.issue('host', { name: hostId }, p.publicKey, 1)).pem };
    },
  };
}
