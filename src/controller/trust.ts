/**
 * Trust: the cluster CA, the controller's server certificate, discovery nonces, enrollment (rules
 * or operator approval), renewal and revocation, and telling who a TLS peer is.
 */
import { createHash, randomBytes, timingSafeEqual, type X509Certificate as NodeX509 } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BoundedExpiringMap } from '../common/bounded-map.ts';
import type { Discover } from '../discovery/messages.ts';
import { newNonce } from '../discovery/responder.ts';
import type { Host } from '../model/host.ts';
import type { EnrollmentRule, HostTrust } from '../model/trust.ts';
import { checkCsr, ClusterCa, generateKeyPair, publicKeyFromB64, type IssuedCertificate } from '../pki/index.ts';
import { NotFoundError, type Store } from '../store/index.ts';

export class TrustError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface TrustOptions {
  /** Where the CA lives (ca.key 0600, ca.crt). */
  pkiDir: string;
  store: Store;
  log: Logger;
  hostCertDays?: number;
  /** Extra names and addresses for the server certificate. */
  serverNames?: string[];
  /** Memory the discovery nonces may hold (estimated bytes; default 16 MiB): the oldest go first. */
  nonceMemoryBytes?: number;
}

interface PendingNonce {
  hostId: string;
  publicKey: string;
  labels: Record<string, string>;
}

const NONCE_TTL_MS = 10 * 60_000;
const DEFAULT_NONCE_MEMORY_BYTES = 16 << 20;

export type Peer = { kind: 'host'; hostId: string; serial: string } | { kind: 'operator'; name: string } | { kind: 'none'; reason: string };

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Serial numbers as one spelling: lower-case hex without leading zeros. */
export function normSerial(s: string): string {
  return s.toLowerCase().replace(/^0+/, '');
}

/** Whether a rule admits an enrolling host. Pure. */
export function ruleAdmits(r: EnrollmentRule, req: { hostId: string; labels: Record<string, string>; tokenSha256?: string }, now: Date): boolean {
  if (r.status.phase !== 'active') return false;
  if (r.spec.expiresAt && Date.parse(r.spec.expiresAt) < now.getTime()) return false;
  const max = r.spec.maxUses ?? (r.spec.kind === 'token' ? 1 : Infinity);
  if (r.status.uses >= max) return false;
  switch (r.spec.kind) {
    case 'token':
      return !!req.tokenSha256 && !!r.spec.tokenSha256 && timingSafeEqual(Buffer.from(req.tokenSha256), Buffer.from(r.spec.tokenSha256));
    case 'host-ids':
      return (r.spec.hostIds ?? []).includes(req.hostId);
    case 'labels':
      return Object.entries(r.spec.labels ?? {}).every(([k, v]) => req.labels[k] === v) && Object.keys(r.spec.labels ?? {}).length > 0;
  }
}

export class TrustService {
  readonly ca: ClusterCa;
  server!: { certPem: string; keyPem: string; der: Buffer };
  // Every ack stores one, for any stranger whose datagram verifies against the key it carries itself.
  private readonly nonces: BoundedExpiringMap<PendingNonce>;
  private revoked = new Set<string>();
  private readonly hostDays: number;

  private constructor(
    ca: ClusterCa,
    private readonly o: TrustOptions,
  ) {
    this.ca = ca;
    this.hostDays = o.hostCertDays ?? 30;
    this.nonces = new BoundedExpiringMap({ ttlMs: NONCE_TTL_MS, maxBytes: o.nonceMemoryBytes ?? DEFAULT_NONCE_MEMORY_BYTES });
  }

  static async start(o: TrustOptions): Promise<TrustService> {
    const t = new TrustService(await ClusterCa.loadOrCreate(o.pkiDir), o);
    await t.issueServerCert();
    for (const c of await o.store.certificates.list()) if (c.status.phase === 'revoked') t.revoked.add(normSerial(c.name));
    return t;
  }

  /** A fresh server certificate at each start, for every local address and name. */
  private async issueServerCert(): Promise<void> {
    const ips = new Set<string>(['127.0.0.1', '::1']);
    for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) ips.add(a.address);
    const dns = new Set<string>(['localhost', hostname()]);
    for (const n of this.o.serverNames ?? []) (/^[\d.]+$|:/.test(n) ? ips : dns).add(n);
    const pair = generateKeyPair();
    const cert = await this.ca.issue('server', { name: hostname(), ips: [...ips], dnsNames: [...dns] }, pair.publicKey, 90);
    this.server = { certPem: cert.pem, keyPem: pair.privateKey, der: Buffer.from(cert.pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64') };
  }

  get caDer(): Buffer {
    return Buffer.from(this.ca.certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  }

  /** Called by the discovery responder for each acknowledgement: binds a nonce to the host and key. */
  issueNonce(d: Discover): string {
    const nonce = newNonce();
    this.nonces.set(nonce, { hostId: d.hostId, publicKey: d.publicKey, labels: d.labels }, Date.now());
    return nonce;
  }

  /** Estimated bytes the discovery nonces hold now. */
  get nonceBytes(): number {
    return this.nonces.bytes;
  }

  private async record(cert: IssuedCertificate, profile: string, subject: string, hostId?: string): Promise<void> {
    await this.o.store.certificates.create({
      name: cert.serial,
      spec: { profile, subject, hostId, fingerprint: cert.fingerprint, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString() },
      status: { phase: 'valid', conditions: [] },
    });
  }

  private async issueHost(hostId: string, csrPem: string): Promise<IssuedCertificate> {
    const csr = await checkCsr(csrPem);
    const cert = await this.ca.issue('host', { name: hostId }, csr.publicKey, this.hostDays);
    await this.record(cert, 'host', `CN=${hostId}`, hostId);
    return cert;
  }

  /**
   * An enrollment request: a CSR for the host's discovered key, bound by the discovery nonce (or,
   * for a host already known, by that key). Admitted by a rule, or left pending for an operator.
   */
  async enroll(req: { hostId: string; name?: string; nonce?: string; csr: string; bootstrapToken?: string }): Promise<{ status: 'trusted'; certificate: string; ca: string } | { status: 'pending-approval' }> {
    const { store } = this.o;
    let csr;
    try {
      csr = await checkCsr(req.csr);
    } catch (e) {
      throw new TrustError(400, 'bad_csr', (e as Error).message);
    }
    if (csr.commonName !== req.hostId) throw new TrustError(400, 'bad_csr', `CSR is for '${csr.commonName}', not host ${req.hostId}`);
    const existing = await store.hosts.get(req.hostId);
    const bound = req.nonce ? this.nonces.get(req.nonce, Date.now()) : undefined;
    if (bound && bound.hostId !== req.hostId) throw new TrustError(403, 'bad_nonce', 'the nonce was issued to another host');
    const unknownNonce = () => new TrustError(403, 'bad_nonce', 'unknown nonce: discover the controller first');
    if (!bound && !existing?.status.trust) throw unknownNonce();
    const publicKey = bound?.publicKey ?? existing!.status.trust!.publicKey;
    // Without a nonce, a request that does not prove the host's own key hears what an unknown host id hears.
    if (csr.publicKeyB64 !== publicKey) throw bound ? new TrustError(403, 'key_mismatch', 'the CSR key is not the key this host proved in discovery') : unknownNonce();
    const trust = existing?.status.trust;
    if (trust && trust.publicKey !== publicKey) throw new TrustError(409, 'key_mismatch', `host ${req.hostId} is bound to another key; an operator must delete it first`);
    if (trust?.state === 'rejected') throw new TrustError(403, 'rejected', `host ${req.hostId} was rejected by an operator`);
    if (trust?.state === 'revoked') throw new TrustError(403, 'revoked', `host ${req.hostId} has been revoked`);
    if (req.nonce) this.nonces.delete(req.nonce);

    // Already trusted: approved while the agent waited (the certificate waits here), or an agent
    // that lost its certificate and proves the same key again (a fresh one, like a renewal).
    if (trust?.state === 'trusted') {
      if (trust.certificate) return { status: 'trusted', certificate: trust.certificate, ca: this.ca.certPem };
      return { status: 'trusted', ...(await this.renew(req.hostId, req.csr)) };
    }

    const labels = bound?.labels ?? trust?.labels ?? {};
    const now = new Date();
    const tokenSha256 = req.bootstrapToken ? sha256Hex(req.bootstrapToken) : undefined;
    const rule = (await store.enrollmentRules.list()).find((r) => ruleAdmits(r, { hostId: req.hostId, labels, tokenSha256 }, now));
    const base: HostTrust = { state: 'pending', publicKey, csr: req.csr, labels, requestedAt: trust?.requestedAt ?? now.toISOString() };
    if (!rule) {
      await this.upsertHost(req.hostId, req.name ?? req.hostId, base, 'pending-approval');
      this.o.log.info({ hostId: req.hostId }, 'host waits for approval');
      return { status: 'pending-approval' };
    }
    // Count the use first, so a rule never admits more hosts than it allows, even when racing.
    await store.enrollmentRules.update(rule.id, (cur) => {
      const uses = cur.status.uses + 1;
      const max = cur.spec.maxUses ?? (cur.spec.kind === 'token' ? 1 : Infinity);
      if (cur.status.uses >= max) throw new TrustError(403, 'rule_used_up', `enrollment rule ${cur.name} is used up`);
      return { status: { ...cur.status, uses, admitted: [...cur.status.admitted, req.hostId].slice(-1000), phase: uses >= max ? 'used-up' : 'active' } };
    });
    const cert = await this.issueHost(req.hostId, req.csr);
    await this.upsertHost(req.hostId, req.name ?? req.hostId, { ...base, state: 'trusted', csr: undefined, approvedBy: `rule ${rule.name}`, certificate: cert.pem, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() }, 'trusted');
    this.o.log.info({ hostId: req.hostId, rule: rule.name }, 'host enrolled');
    return { status: 'trusted', certificate: cert.pem, ca: this.ca.certPem };
  }

  private async upsertHost(id: string, name: string, trust: HostTrust, phase: 'pending-approval' | 'trusted'): Promise<void> {
    const { store } = this.o;
    const existing = await store.hosts.get(id);
    if (existing) {
      await store.hosts.update(id, (cur) => ({ status: { ...cur.status, trust, phase: cur.status.agent.connected ? cur.status.phase : phase } }));
      return;
    }
    const byName = await store.hosts.find(name);
    await store.hosts.create({
      id,
      name: byName ? id : name,
      spec: { cordoned: false },
      status: { phase, conditions: [], trust, agent: { connected: false } },
    });
  }

  private async mustHost(ref: string): Promise<Host> {
    const h = await this.o.store.hosts.find(ref);
    if (!h) throw new NotFoundError('Host', ref);
    return h;
  }

  async approve(ref: string, by: string): Promise<Host> {
    const h = await this.mustHost(ref);
    const t = h.status.trust;
    if (!t || t.state !== 'pending' || !t.csr) throw new TrustError(409, 'not_pending', `host ${h.name} is not waiting for approval`);
    const cert = await this.issueHost(h.id, t.csr);
    return this.o.store.hosts.update(h.id, (cur) => ({
      status: { ...cur.status, phase: 'trusted', trust: { ...t, state: 'trusted', csr: undefined, approvedBy: by, certificate: cert.pem, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() } },
    }));
  }

  async reject(ref: string): Promise<Host> {
    const h = await this.mustHost(ref);
    const t = h.status.trust;
    if (!t || t.state !== 'pending') throw new TrustError(409, 'not_pending', `host ${h.name} is not waiting for approval`);
    return this.o.store.hosts.update(h.id, (cur) => ({ status: { ...cur.status, phase: 'rejected', trust: { ...t, state: 'rejected', csr: undefined } } }));
  }

  /** Revokes every certificate of the host; its connections are closed by the caller at once. */
  async revoke(ref: string): Promise<Host> {
    const h = await this.mustHost(ref);
    const t = h.status.trust;
    if (!t || t.state !== 'trusted') throw new TrustError(409, 'not_trusted', `host ${h.name} holds no trust to revoke`);
    const now = new Date().toISOString();
    for (const c of await this.o.store.certificates.list()) {
      if (c.spec.hostId !== h.id || c.status.phase === 'revoked') continue;
      await this.o.store.certificates.update(c.id, (cur) => ({ status: { ...cur.status, phase: 'revoked', revokedAt: now } }));
      this.revoked.add(normSerial(c.name));
    }
    this.o.log.warn({ hostId: h.id }, 'host revoked');
    return this.o.store.hosts.update(h.id, (cur) => ({ status: { ...cur.status, phase: 'revoked', trust: { ...t, state: 'revoked', certificate: undefined } } }));
  }

  /** A trusted host asks for a fresh certificate (same or new key) before its current one expires. */
  async renew(hostId: string, csrPem: string): Promise<{ certificate: string; ca: string }> {
    const h = await this.mustHost(hostId);
    if (h.status.trust?.state !== 'trusted') throw new TrustError(403, 'not_trusted', `host ${hostId} is not trusted`);
    let csr;
    try {
      csr = await checkCsr(csrPem);
    } catch (e) {
      throw new TrustError(400, 'bad_csr', (e as Error).message);
    }
    if (csr.commonName !== hostId) throw new TrustError(400, 'bad_csr', `CSR is for '${csr.commonName}'`);
    const cert = await this.issueHost(hostId, csrPem);
    await this.o.store.hosts.update(hostId, (cur) => ({
      status: { ...cur.status, trust: { ...cur.status.trust!, publicKey: csr.publicKeyB64, certificate: cert.pem, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() } },
    }));
    return { certificate: cert.pem, ca: this.ca.certPem };
  }

  /** Creates an enrollment rule; a token rule returns its token (shown once, stored hashed). */
  async addRule(name: string, spec: { kind: EnrollmentRule['spec']['kind']; maxUses?: number; hostIds?: string[]; labels?: Record<string, string>; expiresAt?: string }): Promise<{ rule: EnrollmentRule; token?: string }> {
    const token = spec.kind === 'token' ? randomBytes(24).toString('base64url') : undefined;
    const rule = await this.o.store.enrollmentRules.create({
      name,
      spec: { ...spec, tokenSha256: token ? sha256Hex(token) : undefined },
      status: { phase: 'active', conditions: [], uses: 0, admitted: [] },
    });
    return { rule, token };
  }

  isRevoked(serial: string): boolean {
    return this.revoked.has(normSerial(serial));
  }

  /** Who a TLS peer is, from its (already chain-verified) certificate. */
  identify(authorized: boolean, cert: PeerCertificate | undefined | null, x509?: NodeX509): Peer {
    if (!cert || !cert.subject || !cert.serialNumber) return { kind: 'none', reason: 'no client certificate' };
    if (!authorized) return { kind: 'none', reason: 'client certificate not issued by the cluster CA' };
    if (this.isRevoked(cert.serialNumber)) return { kind: 'none', reason: 'client certificate revoked' };
    const ou = String(cert.subject.OU ?? '');
    const cn = String(cert.subject.CN ?? '');
    if (x509 && new Date(x509.validTo).getTime() < Date.now()) return { kind: 'none', reason: 'client certificate expired' };
    if (ou === 'hosts') return { kind: 'host', hostId: cn, serial: normSerial(cert.serialNumber) };
    if (ou === 'operators') return { kind: 'operator', name: cn };
    return { kind: 'none', reason: `certificate profile ${ou} may not use the API` };
  }

  /**
   * An instance principal certificate for a trusted host of a dedicated cluster: the host's own
   * key (the one it proved at enrollment), its id, and the segments of its cluster's networks.
   */
  async issuePrincipal(hostId: string, segments: number[]): Promise<IssuedCertificate> {
    const h = await this.mustHost(hostId);
    const t = h.status.trust;
    if (t?.state !== 'trusted') throw new TrustError(409, 'not_trusted', `host ${h.name} is not trusted`);
    const key = publicKeyFromB64(t.publicKey).export({ type: 'spki', format: 'pem' }).toString();
    const cert = await this.ca.issue('principal', { name: h.name, hostId: h.id, segments }, key, this.hostDays);
    await this.record(cert, 'principal', `CN=${h.name}`, h.id);
    return cert;
  }

  /** Revokes one certificate by serial (a principal whose host left its cluster). */
  async revokeSerial(serial: string): Promise<void> {
    const c = await this.o.store.certificates.find(serial);
    if (!c || c.status.phase === 'revoked') return;
    await this.o.store.certificates.update(c.id, (cur) => ({ status: { ...cur.status, phase: 'revoked', revokedAt: new Date().toISOString() } }));
    this.revoked.add(normSerial(serial));
  }

  private crlCache?: { key: string; pem: string; madeAt: number };

  /**
   * The CA's current revocation list (PEM). The same bytes until a revocation changes it or half
   * its day of validity has passed, so readers can tell a new list from a re-signed old one.
   */
  async crl(): Promise<string> {
    const revoked = (await this.o.store.certificates.list()).filter((c) => c.status.phase === 'revoked');
    const key = revoked.map((c) => c.name).sort().join(',');
    const c = this.crlCache;
    if (c && c.key === key && Date.now() - c.madeAt < 12 * 3_600_000) return c.pem;
    const pem = await this.ca.crl(revoked.map((x) => ({ serial: x.name, at: new Date(x.status.revokedAt ?? x.updatedAt) })));
    this.crlCache = { key, pem, madeAt: Date.now() };
    return pem;
  }

  /** The server certificate of a port authenticator (the RADIUS server hosts' supplicants check against the cluster CA). */
  async issueAuthenticator(name: string, publicKeyPem: string): Promise<IssuedCertificate> {
    const cert = await this.ca.issue('authenticator', { name, dnsNames: [name] }, publicKeyPem, 365);
    await this.record(cert, 'authenticator', `CN=${name}`);
    return cert;
  }

  /** Issues an operator client certificate (for operators who prefer certificates to tokens). */
  async issueOperator(name: string, publicKeyPem: string): Promise<IssuedCertificate> {
    const cert = await this.ca.issue('operator', { name }, publicKeyPem, 365);
    await this.record(cert, 'operator', `CN=${name}`);
    return cert;
  }
}

export function pkiDirOf(dataDir: string): string {
  return join(dataDir, 'pki');
}
