/**
 * A stranger on the network: a script with no credentials that does what the public discovery
 * and enrollment routes allow, claiming whatever host id, name and labels it likes.
 */
import { randomBytes } from 'node:crypto';
import { httpsRequest } from '../../src/common/https.ts';
import { verifyAck } from '../../src/discovery/client.ts';
import { seal } from '../../src/discovery/messages.ts';
import { createCsr, generateKeyPair, publicKeyB64, type KeyPairPem } from '../../src/pki/index.ts';

export interface Stranger {
  hostId: string;
  keys: KeyPairPem;
  /** A nonce from a discover message sent over HTTPS, as any host gets one. */
  nonce(o?: { name?: string; labels?: Record<string, string> }): Promise<string>;
  /** POST /v1/enroll: the status and the error code, if any. */
  enroll(o: { nonce?: string; name?: string; bootstrapToken?: string }): Promise<{ status: number; code?: string; body: Record<string, unknown> }>;
}

export function stranger(controller: { url: string; caPem: string; caFingerprint: string }, hostId: string, keys = generateKeyPair()): Stranger {
  const tls = { ca: controller.caPem };
  return {
    hostId,
    keys,
    async nonce(o = {}) {
      const challenge = randomBytes(16).toString('base64');
      const msg = seal(
        {
          type: 'discover',
          hostId,
          name: o.name ?? hostId,
          publicKey: publicKeyB64(keys.publicKey),
          challenge,
          sentAt: Date.now(),
          policy: {},
          labels: o.labels ?? {},
        },
        keys.privateKey,
      );
      const res = await httpsRequest(`${controller.url}/v1/discover`, {
        method: 'POST',
        body: msg,
        headers: { 'content-type': 'application/octet-stream' },
        tls,
      });
      if (res.status !== 200) throw new Error(`discover: HTTP ${res.status}`);
      return (await verifyAck(res.body, { hostId, challenge, pinnedCaFingerprint: controller.caFingerprint, now: Date.now() })).ack.nonce;
    },
    async enroll(o) {
      const res = await httpsRequest(`${controller.url}/v1/enroll`, {
        method: 'POST',
        body: JSON.stringify({ hostId, name: o.name, nonce: o.nonce, csr: await createCsr(hostId, keys), bootstrapToken: o.bootstrapToken }),
        headers: { 'content-type': 'application/json' },
        tls,
      });
      const body = res.json<Record<string, unknown> & { error?: { code: string } }>();
      return { status: res.status, code: body.error?.code, body };
    },
  };
}
