/**
 * Joining a cluster: find a controller (multicast/broadcast discovery, or a discover message sent
 * straight to a known controller over HTTPS), pin its CA from the verified acknowledgement, send a
 * CSR bound to the ack's nonce, and wait (polling) while an operator has to approve.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { httpsRequest, type TlsOptions } from '../common/https.ts';
import { discoverController, verifyAck, type Acknowledged, type Identity } from '../discovery/client.ts';
import { seal, type Policy } from '../discovery/messages.ts';
import { fingerprintOf } from '../pki/ca.ts';
import { createCsr } from '../pki/csr.ts';
import { publicKeyB64 } from '../pki/keys.ts';
import type { Credentials } from './credentials.ts';

export type JoinMode =
  | { kind: 'discover'; policy: Policy; labels: Record<string, string>; group?: string; port?: number; targets?: string[]; onlyTargets?: boolean; pinnedCaFingerprint?: string; collectMs?: number }
  | { kind: 'direct'; controllerUrl: string; caPem?: string; caFingerprint?: string; policy?: Policy; labels?: Record<string, string> };

export interface EnrollOptions {
  identity: Identity;
  mode: JoinMode;
  bootstrapToken?: string;
  log: Logger;
  signal?: AbortSignal;
}

export class EnrollmentRefused extends Error {}

/** A discover message sent to one controller over HTTPS; its answer is verified like a datagram's. */
async function discoverDirect(o: EnrollOptions, m: Extract<JoinMode, { kind: 'direct' }>): Promise<Acknowledged> {
  const challenge = randomBytes(16).toString('base64');
  const msg = seal(
    { type: 'discover', hostId: o.identity.hostId, name: o.identity.name, publicKey: publicKeyB64(o.identity.keys.publicKey), challenge, sentAt: Date.now(), policy: m.policy ?? {}, labels: m.labels ?? {} },
    o.identity.keys.privateKey,
  );
  const pinned = m.caPem ? fingerprintOf(m.caPem) : m.caFingerprint;
  if (!pinned) throw new EnrollmentRefused(`no way to trust ${m.controllerUrl}: pass --ca-file or --ca-fingerprint (see 'outrig cluster info'), or use --discover`);
  // With only a fingerprint the first contact cannot verify the server; the ack's signature and pinned CA carry the trust.
  const tls: TlsOptions = m.caPem ? { ca: m.caPem } : { insecure: true };
  const res = await httpsRequest(`${m.controllerUrl}/v1/discover`, { method: 'POST', body: msg, headers: { 'content-type': 'application/octet-stream' }, tls });
  if (res.status === 204) throw new EnrollmentRefused(`controller ${m.controllerUrl} did not answer this host's discovery`);
  if (res.status !== 200) throw new Error(`discovery at ${m.controllerUrl}: HTTP ${res.status}`);
  return verifyAck(res.body, { hostId: o.identity.hostId, challenge, pinnedCaFingerprint: pinned, now: Date.now() });
}

export async function enroll(o: EnrollOptions): Promise<Credentials> {
  const found =
    o.mode.kind === 'discover'
      ? await discoverController({ identity: o.identity, policy: o.mode.policy, labels: o.mode.labels, group: o.mode.group, port: o.mode.port, targets: o.mode.targets, onlyTargets: o.mode.onlyTargets, pinnedCaFingerprint: o.mode.pinnedCaFingerprint, collectMs: o.mode.collectMs, log: o.log, signal: o.signal })
      : await discoverDirect(o, o.mode);
  const endpoint = found.ack.controller.endpoint;
  const tls: TlsOptions = { ca: found.caCertPem };
  const csr = await createCsr(o.identity.hostId, o.identity.keys);
  let nonce: string | undefined = found.ack.nonce;
  let wait = 1000;
  let logged = 0;
  for (;;) {
    if (o.signal?.aborted) throw new Error('enrollment aborted');
    const res = await httpsRequest(`${endpoint}/v1/enroll`, {
      method: 'POST',
      body: JSON.stringify({ hostId: o.identity.hostId, name: o.identity.name, nonce, csr, bootstrapToken: o.bootstrapToken }),
      headers: { 'content-type': 'application/json' },
      tls,
    });
    if (res.status === 201) {
      const r = res.json<{ certificate: string; ca: string }>();
      o.log.info({ controller: found.ack.controller.name, endpoint }, 'enrolled: certificate issued');
      return { certPem: r.certificate, caPem: found.caCertPem, controllerUrl: endpoint, caFingerprint: found.caFingerprint };
    }
    if (res.status === 202) {
      // Known to the controller now; later polls prove the key with the CSR alone.
      nonce = undefined;
      if (Date.now() - logged > 30_000) {
        o.log.info({ controller: found.ack.controller.name }, `waiting for an operator to approve this host (outrig host approve ${o.identity.hostId})`);
        logged = Date.now();
      }
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(wait * 2, 10_000);
      continue;
    }
    let msg = `HTTP ${res.status}`;
    try {
      msg = res.json<{ error: { message: string } }>().error.message;
    } catch {
      // keep the status
    }
    throw new EnrollmentRefused(`enrollment refused by ${endpoint}: ${msg}`);
  }
}

