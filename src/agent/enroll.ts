/**
 * Joining a cluster: find a controller (multicast/broadcast discovery, or a discover message sent
 * straight to a known controller over HTTPS), pin its CA from the verified acknowledgement, send a
 * CSR bound to the ack's nonce, and wait (polling) while an operator has to approve. A failed
 * attempt starts over, discovery included, after a capped backoff.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { httpsRequest, type TlsOptions } from '../common/https.ts';
import { discoverController, verifyAck, type Acknowledged, type Identity } from '../discovery/index.ts';
import { seal, type Policy } from '../discovery/index.ts';
import { fingerprintOf } from '../pki/index.ts';
import { createCsr } from '../pki/index.ts';
import { publicKeyB64 } from '../pki/index.ts';
import type { Credentials } from './credentials.ts';

export type JoinMode =
  | {
      kind: 'discover';
      policy: Policy;
      labels: Record<string, string>;
      group?: string;
      port?: number;
      targets?: string[];
      onlyTargets?: boolean;
      pinnedCaFingerprint?: string;
      collectMs?: number;
    }
  | { kind: 'direct'; controllerUrl: string; caPem?: string; caFingerprint?: string; policy?: Policy; labels?: Record<string, string> };

interface EnrollOptions {
  identity: Identity;
  mode: JoinMode;
  bootstrapToken?: string;
  log: Logger;
  signal?: AbortSignal;
}

/** A refused enrollment; `final` when trying again cannot help (a configuration error, or an operator's decision against this host). */
export class EnrollmentRefused extends Error {
  constructor(
    message: string,
    readonly final = false,
  ) {
    super(message);
  }
}

/** Refusals that are an operator's decision about this very host (told only to a requester proving its key). */
const OPERATOR_DECISIONS = new Set(['rejected', 'revoked']);

/** A discover message sent to one controller over HTTPS; its answer is verified like a datagram's. */
async function discoverDirect(o: EnrollOptions, m: Extract<JoinMode, { kind: 'direct' }>): Promise<Acknowledged> {
  const challenge = randomBytes(16).toString('base64');
  const msg = seal(
    {
      type: 'discover',
      hostId: o.identity.hostId,
      name: o.identity.name,
      publicKey: publicKeyB64(o.identity.keys.publicKey),
      challenge,
      sentAt: Date.now(),
      policy: m.policy ?? {},
      labels: m.labels ?? {},
    },
    o.identity.keys.privateKey,
  );
  const pinned = m.caPem ? fingerprintOf(m.caPem) : m.caFingerprint;
  if (!pinned)
    throw new EnrollmentRefused(`no way to trust ${m.controllerUrl}: pass --ca-file or --ca-fingerprint (see 'outrig cluster info'), or use --discover`, true);
  // With only a fingerprint the first contact cannot verify the server; the ack's signature and pinned CA carry the trust.
  const tls: TlsOptions = m.caPem ? { ca: m.caPem } : { insecure: true };
  const res = await httpsRequest(`${m.controllerUrl}/v1/discover`, { method: 'POST', body: msg, headers: { 'content-type': 'application/octet-stream' }, tls });
  if (res.status === 204) throw new EnrollmentRefused(`controller ${m.controllerUrl} did not answer this host's discovery`);
  if (res.status !== 200) throw new Error(`discovery at ${m.controllerUrl}: HTTP ${res.status}`);
  return verifyAck(res.body, { hostId: o.identity.hostId, challenge, pinnedCaFingerprint: pinned, now: Date.now() });
}

export async function enroll(o: EnrollOptions): Promise<Credentials> {
  // Without a pinned CA the agent trusts whichever controller answers first, and would hand it the token.
  if (o.bootstrapToken && o.mode.kind === 'discover' && !o.mode.pinnedCaFingerprint)
    throw new EnrollmentRefused("a bootstrap token goes only to a cluster whose CA is pinned: pass --ca-fingerprint (from 'outrig cluster info')", true);
  for (;;) {
    const creds = await request(o);
    if (creds) return creds;
    o.log.info('the request to enroll was forgotten by the controller (expired or deleted); discovering again');
  }
}

/**
 * One discovery and the enrollment request it allows, polled while an operator has to approve and
 * retried while too many hosts wait (429). Undefined when the controller forgot the request after
 * the agent had waited (it expired): the caller starts again from discovery.
 */
async function request(o: EnrollOptions): Promise<Credentials | undefined> {
  const found =
    o.mode.kind === 'discover'
      ? await discoverController({
          identity: o.identity,
          policy: o.mode.policy,
          labels: o.mode.labels,
          group: o.mode.group,
          port: o.mode.port,
          targets: o.mode.targets,
          onlyTargets: o.mode.onlyTargets,
          pinnedCaFingerprint: o.mode.pinnedCaFingerprint,
          collectMs: o.mode.collectMs,
          log: o.log,
          signal: o.signal,
        })
      : await discoverDirect(o, o.mode);
  const endpoint = found.ack.endpoint;
  const tls: TlsOptions = { ca: found.caCertPem };
  const csr = await createCsr(o.identity.hostId, o.identity.keys);
  let nonce: string | undefined = found.ack.nonce;
  let wait = 1000;
  let busyWait = 5000;
  let waited = false;
  let logged = 0;
  const say = (msg: string) => {
    if (Date.now() - logged < 30_000) return;
    o.log.info({ endpoint: found.ack.endpoint }, msg);
    logged = Date.now();
  };
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
      o.log.info({ endpoint }, 'enrolled: certificate issued');
      return { certPem: r.certificate, caPem: found.caCertPem, controllerUrl: endpoint, caFingerprint: found.caFingerprint };
    }
    if (res.status === 202) {
      // Known to the controller now; later polls prove the key with the CSR alone.
      nonce = undefined;
      waited = true;
      say(`waiting for an operator to approve this host (outrig host approve ${o.identity.hostId})`);
      await sleep(wait, undefined, { signal: o.signal });
      wait = Math.min(wait * 2, 10_000);
      continue;
    }
    let err = { code: '', message: `HTTP ${res.status}` };
    try {
      err = res.json<{ error: { code: string; message: string } }>().error;
    } catch {
      // keep the status
    }
    if (res.status === 429) {
      // Too many hosts wait for approval already: the request changed nothing, so it can simply be made again.
      waited = true;
      say(`the controller has too many hosts waiting for approval; trying again (${err.message})`);
      await sleep(busyWait, undefined, { signal: o.signal });
      busyWait = Math.min(busyWait * 2, 60_000);
      continue;
    }
    if (waited && res.status === 403 && err.code === 'bad_nonce') return undefined;
    // Believed only from a CA this agent was told to trust: a controller it merely met first
    // (trust on first use) could be anyone, and must not be able to send it away for good.
    const pinned = o.mode.kind === 'direct' || !!o.mode.pinnedCaFingerprint;
    throw new EnrollmentRefused(`enrollment refused by ${endpoint}: ${err.message}`, pinned && OPERATOR_DECISIONS.has(err.code));
  }
}

/**
 * Enrolls, starting over after any failure (an unreachable or wrong controller, an expired
 * nonce, a refusal) with a backoff of 1 s doubling to `maxBackoffMs`, logging each; only a final
 * refusal, or the signal, ends it.
 */
export async function enrollWithRetry(o: EnrollOptions & { maxBackoffMs: number }): Promise<Credentials> {
  let wait = 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await enroll(o);
    } catch (e) {
      if (o.signal?.aborted || (e instanceof EnrollmentRefused && e.final)) throw e;
      o.log.warn(
        { err: (e as Error).message, attempt, retryInMs: wait },
        `enrollment failed (${(e as Error).message}); trying again in ${Math.ceil(wait / 1000)} s`,
      );
      await sleep(wait, undefined, { signal: o.signal });
      wait = Math.min(wait * 2, o.maxBackoffMs);
    }
  }
}
