/**
 * Trust: the cluster CA, discovery nonces, enrollment (rules or operator approval), renewal and
 * revocation. The certificates it issues and who a TLS peer is: `certs` (certificates.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Host } from '../../model/host.ts';
import { ruleAuthentication, type Certificate, type EnrollmentRule, type HostTrust } from '../../model/trust.ts';
import { checkCsr, ClusterCa, keyFingerprint, publicKeyFromB64, type IssuedCertificate } from '../../pki/index.ts';
import { NotFoundError, type Store } from '../../store/index.ts';
import { StatusWriter } from '../runtime/status-writer.ts';
import { CertificateRecords } from './certificates.ts';
import { DiscoveryNonces } from './nonces.ts';
import { maxUsesOf, ruleAdmits, ruleProblem, ruleSpec, type RuleInput } from './enrollment-rules.ts';
import { DEFAULT_PENDING_LIMITS, PendingHosts, type PendingLimits } from './pending-hosts.ts';
import { sha256Hex, TrustError } from './trust-error.ts';

export { TrustError } from './trust-error.ts';

export interface TrustOptions {
  /** Where the CA lives (ca.key 0600, ca.crt). */
  pkiDir: string;
  store: Store;
  log: Logger;
  hostCertDays?: number;
  /** Extra names and addresses for the server certificate. */
  serverNames?: string[];
  /** How many hosts may wait for approval, and for how long (default 200, 1 hour). */
  pendingHosts?: Partial<PendingLimits>;
  /** Memory the discovery nonces may hold (estimated bytes; default 16 MiB): the oldest go first. */
  nonceMemoryBytes?: number;
}

export type { Peer } from './certificates.ts';

export class TrustService {
  readonly ca: ClusterCa;
  server!: { certPem: string; keyPem: string; der: Buffer };
  readonly pending: PendingHosts;
  readonly certs: CertificateRecords;
  readonly nonces: DiscoveryNonces;
  private readonly hostDays: number;
  private queue: Promise<unknown> = Promise.resolve();

  /** Trust decisions are recorded in the hosts' and rules' status, through the one status writer. */
  private readonly status = new StatusWriter();

  private constructor(
    ca: ClusterCa,
    private readonly o: TrustOptions,
  ) {
    this.ca = ca;
    this.certs = new CertificateRecords(o.store, ca);
    this.hostDays = o.hostCertDays ?? 30;
    this.pending = new PendingHosts({ ...DEFAULT_PENDING_LIMITS, ...o.pendingHosts });
    this.nonces = new DiscoveryNonces(o.nonceMemoryBytes);
  }

  static async start(o: TrustOptions): Promise<TrustService> {
    const t = new TrustService(await ClusterCa.loadOrCreate(o.pkiDir), o);
    await t.certs.load();
    for (const h of await o.store.hosts.list()) if (h.status.trust?.state === 'pending') t.pending.add(h.id, Date.parse(h.status.trust.requestedAt));
    t.server = await t.certs.issueServer(o.serverNames ?? []);
    return t;
  }

  get caDer(): Buffer {
    return Buffer.from(this.ca.certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  }

  /** Runs changes of hosts' standing one at a time: the pending cap is counted and kept exactly. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async issueHost(hostId: string, csrPem: string): Promise<IssuedCertificate> {
    const csr = await checkCsr(csrPem);
    const cert = await this.ca.issue('host', { name: hostId }, csr.publicKey, this.hostDays);
    await this.certs.record(cert, 'host', `CN=${hostId}`, hostId);
    return cert;
  }

  /**
   * An enrollment request: a CSR for the host's discovered key, bound by the discovery nonce (or,
   * for a host already known, by that key). Admitted by a rule, or left pending for an operator.
   */
  async enroll(req: {
    hostId: string;
    name?: string;
    nonce?: string;
    csr: string;
    bootstrapToken?: string;
  }): Promise<{ status: 'trusted'; certificate: string; ca: string } | { status: 'pending-approval' }> {
    const { store } = this.o;
    let csr;
    try {
      csr = await checkCsr(req.csr);
    } catch (e) {
      throw new TrustError(400, 'bad_csr', (e as Error).message);
    }
    if (csr.commonName !== req.hostId) throw new TrustError(400, 'bad_csr', `CSR is for '${csr.commonName}', not host ${req.hostId}`);
    let existing = await store.hosts.get(req.hostId);
    const bound = req.nonce ? this.nonces.get(req.nonce) : undefined;
    if (bound && bound.hostId !== req.hostId) throw new TrustError(403, 'bad_nonce', 'the nonce was issued to another host');
    const unknownNonce = () => new TrustError(403, 'bad_nonce', 'unknown nonce: discover the controller first');
    if (!bound && !existing?.status.trust) throw unknownNonce();
    const publicKey = bound?.publicKey ?? existing!.status.trust!.publicKey;
    // Without a nonce, a request that does not prove the host's own key hears what an unknown host id hears.
    if (csr.publicKeyB64 !== publicKey)
      throw bound ? new TrustError(403, 'key_mismatch', 'the CSR key is not the key this host proved in discovery') : unknownNonce();
    let trust = existing?.status.trust;
    const labels = bound?.labels ?? trust?.labels ?? {};
    const now = new Date();
    const tokenSha256 = req.bootstrapToken ? sha256Hex(req.bootstrapToken) : undefined;
    const proofs = { hostId: req.hostId, labels, tokenSha256, keyFingerprint: keyFingerprint(publicKey) };
    const rule = (await store.enrollmentRules.list()).find((r) => ruleAdmits(r, proofs, now));
    if (trust && trust.publicKey !== publicKey) {
      // A request waiting for approval is a claim anyone could make on this id; a host that proves a token or a registered key takes its place.
      if (trust.state !== 'pending' || !rule || ruleAuthentication(rule.spec) === 'none')
        throw new TrustError(409, 'key_mismatch', `host ${req.hostId} is bound to another key; an operator must delete it first`);
      await this.exclusive(async () => {
        await store.hosts.delete(req.hostId);
        this.pending.remove(req.hostId);
      });
      this.o.log.warn({ hostId: req.hostId, rule: rule.name }, 'a waiting request with another key was displaced by a host the rule admits');
      existing = undefined;
      trust = undefined;
    }
    if (trust?.state === 'rejected') throw new TrustError(403, 'rejected', `host ${req.hostId} was rejected by an operator`);
    if (trust?.state === 'revoked') throw new TrustError(403, 'revoked', `host ${req.hostId} has been revoked`);
    // Another host's name as this host's id would make that name mean two hosts (approving one by name approved the other).
    if (!existing && (await store.hosts.taken(req.hostId)))
      throw new TrustError(409, 'id_taken', `host id ${req.hostId} is the name of another host; this host needs another id`);
    if (req.nonce) this.nonces.delete(req.nonce);

    // Already trusted: approved while the agent waited (the certificate waits here), or an agent
    // that lost its certificate and proves the same key again (a fresh one, like a renewal).
    if (trust?.state === 'trusted') {
      if (trust.certificate) return { status: 'trusted', certificate: trust.certificate, ca: this.ca.certPem };
      return { status: 'trusted', ...(await this.renew(req.hostId, req.csr)) };
    }

    const base: HostTrust = { state: 'pending', publicKey, csr: req.csr, labels, requestedAt: trust?.requestedAt ?? now.toISOString() };
    if (!rule) {
      await this.waitForApproval(req.hostId, req.name ?? req.hostId, base).catch((e: unknown) => {
        // Refused for now (too many waiting): the nonce stays good for the agent's retry.
        if (bound) this.nonces.keep(req.nonce!, bound);
        throw e;
      });
      this.o.log.info({ hostId: req.hostId }, 'host waits for approval');
      return { status: 'pending-approval' };
    }
    // Count the use first, so a rule never admits more hosts than it allows, even when racing.
    await this.status.record(store.enrollmentRules, rule.id, (cur) => {
      const uses = cur.status.uses + 1;
      const max = maxUsesOf(cur.spec);
      if (cur.status.uses >= max) throw new TrustError(403, 'rule_used_up', `enrollment rule ${cur.name} is used up`);
      return {
        status: {
          ...cur.status,
          uses,
          admitted: [...cur.status.admitted, req.hostId].slice(-1000),
          phase: uses >= max ? ('used-up' as const) : ('active' as const),
        },
      };
    });
    const cert = await this.issueHost(req.hostId, req.csr);
    await this.exclusive(async () => {
      await this.upsertHost(
        req.hostId,
        req.name ?? req.hostId,
        {
          ...base,
          state: 'trusted',
          csr: undefined,
          approvedBy: `rule ${rule.name}`,
          certificate: cert.pem,
          certSerial: cert.serial,
          certNotAfter: cert.notAfter.toISOString(),
        },
        'trusted',
      );
      this.pending.remove(req.hostId);
    });
    this.o.log.info({ hostId: req.hostId, rule: rule.name }, 'host enrolled');
    return { status: 'trusted', certificate: cert.pem, ca: this.ca.certPem };
  }

  /** Stores a host as waiting for an operator, unless too many wait already (429). */
  private waitForApproval(id: string, name: string, trust: HostTrust): Promise<void> {
    return this.exclusive(async () => {
      await this.expireLocked(Date.now());
      if (!this.pending.has(id) && this.pending.full()) {
        throw new TrustError(
          429,
          'too_many_pending',
          `${this.pending.limits.max} hosts are waiting for approval already; try again later (an operator approves, rejects or deletes waiting hosts)`,
        );
      }
      await this.upsertHost(id, name, trust, 'pending-approval');
      this.pending.add(id, Date.parse(trust.requestedAt));
    });
  }

  /** Forgets requests for approval older than the limit (their agents, if alive, ask again). */
  expirePending(now = Date.now()): Promise<string[]> {
    return this.exclusive(() => this.expireLocked(now));
  }

  private async expireLocked(now: number): Promise<string[]> {
    const gone: string[] = [];
    for (const id of this.pending.expired(now)) {
      this.pending.remove(id);
      if ((await this.o.store.hosts.get(id))?.status.trust?.state !== 'pending') continue;
      await this.o.store.hosts.delete(id);
      gone.push(id);
    }
    if (gone.length) this.o.log.info({ hosts: gone }, 'requests for approval expired');
    return gone;
  }

  private async upsertHost(id: string, name: string, trust: HostTrust, phase: 'pending-approval' | 'trusted'): Promise<void> {
    const { store } = this.o;
    const existing = await store.hosts.get(id);
    if (existing) {
      await this.status.record(store.hosts, id, (cur) => ({ status: { ...cur.status, trust, phase: cur.status.agent.connected ? cur.status.phase : phase } }));
      return;
    }
    await store.hosts.create({
      id,
      name: name !== id && (await store.hosts.taken(name)) ? id : name,
      spec: { cordoned: false },
      status: { phase, conditions: [], trust, agent: { connected: false } },
    });
  }

  private async mustHost(ref: string): Promise<Host> {
    const h = await this.o.store.hosts.find(ref);
    if (!h) throw new NotFoundError('Host', ref);
    return h;
  }

  approve(ref: string, by: string): Promise<Host> {
    return this.exclusive(async () => {
      const h = await this.mustHost(ref);
      const t = h.status.trust;
      if (!t || t.state !== 'pending' || !t.csr) throw new TrustError(409, 'not_pending', `host ${h.name} is not waiting for approval`);
      const cert = await this.issueHost(h.id, t.csr);
      this.pending.remove(h.id);
      return this.status.record(this.o.store.hosts, h.id, (cur) => ({
        status: {
          ...cur.status,
          phase: 'trusted',
          trust: {
            ...t,
            state: 'trusted',
            csr: undefined,
            approvedBy: by,
            certificate: cert.pem,
            certSerial: cert.serial,
            certNotAfter: cert.notAfter.toISOString(),
          },
        },
      }));
    });
  }

  reject(ref: string): Promise<Host> {
    return this.exclusive(async () => {
      const h = await this.mustHost(ref);
      const t = h.status.trust;
      if (!t || t.state !== 'pending') throw new TrustError(409, 'not_pending', `host ${h.name} is not waiting for approval`);
      this.pending.remove(h.id);
      return this.status.record(this.o.store.hosts, h.id, (cur) => ({
        status: { ...cur.status, phase: 'rejected', trust: { ...t, state: 'rejected', csr: undefined } },
      }));
    });
  }

  /**
   * Forgets a host that holds nothing: waiting, rejected, revoked, or trusted but disconnected with
   * no instance, volume or cluster on it. Its certificates are revoked first, so a deleted host
   * comes back only by enrolling again (as a new host, by a rule or an operator).
   */
  deleteHost(ref: string, connected: (hostId: string) => boolean): Promise<Host> {
    const { store } = this.o;
    return this.exclusive(async () => {
      const h = await this.mustHost(ref);
      if (connected(h.id)) throw new TrustError(409, 'connected', `host ${h.name} is connected; revoke it first (outrig host revoke ${h.name})`);
      const holds = [
        ...(await store.instances.list()).filter((i) => i.status.hostId === h.id).map((i) => `instance ${i.name}`),
        ...(await store.volumes.list()).filter((v) => v.status.hostId === h.id).map((v) => `volume ${v.name}`),
        ...(await store.hostClusters.list()).filter((c) => c.spec.hosts.includes(h.id)).map((c) => `host cluster ${c.name}`),
      ];
      if (holds.length) throw new TrustError(409, 'in_use', `host ${h.name} still has ${holds.slice(0, 5).join(', ')}${holds.length > 5 ? ', ...' : ''}`);
      await this.certs.revokeWhere((c) => c.spec.hostId === h.id);
      await store.hosts.delete(h.id);
      this.pending.remove(h.id);
      this.o.log.warn({ hostId: h.id, name: h.name }, 'host deleted');
      return h;
    });
  }

  /** Revokes every certificate of the host; its connections are closed by the caller at once. */
  async revoke(ref: string): Promise<Host> {
    const h = await this.mustHost(ref);
    const t = h.status.trust;
    if (!t || t.state !== 'trusted') throw new TrustError(409, 'not_trusted', `host ${h.name} holds no trust to revoke`);
    await this.certs.revokeWhere((c) => c.spec.hostId === h.id);
    this.o.log.warn({ hostId: h.id }, 'host revoked');
    return this.status.record(this.o.store.hosts, h.id, (cur) => ({
      status: { ...cur.status, phase: 'revoked', trust: { ...t, state: 'revoked', certificate: undefined } },
    }));
  }

  /**
   * A trusted host asks for a fresh certificate (same or new key) before its current one expires.
   * The certificates it had are revoked at once: a copy of an old one (or its key) opens nothing
   * from now on. The agent reconnects with the new one; a stream still on an old one is closed at
   * its next message (agent-hub.ts), and its agent reconnects with what it has stored by then.
   */
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
    await this.status.record(this.o.store.hosts, hostId, (cur) => ({
      status: {
        ...cur.status,
        trust: { ...cur.status.trust!, publicKey: csr.publicKeyB64, certificate: cert.pem, certSerial: cert.serial, certNotAfter: cert.notAfter.toISOString() },
      },
    }));
    const superseded = await this.certs.revokeWhere((c) => c.spec.hostId === hostId && c.spec.profile === 'host' && c.name !== cert.serial);
    this.o.log.info({ hostId, serial: cert.serial, superseded: superseded.map((c) => c.name) }, 'host certificate renewed');
    return { certificate: cert.pem, ca: this.ca.certPem };
  }

  /** Deletes an enrollment rule: hosts it admitted stay trusted; its token admits no more. */
  async removeRule(ref: string): Promise<void> {
    const r = await this.o.store.enrollmentRules.mustFind(ref);
    await this.o.store.enrollmentRules.delete(r.id);
  }

  /** Creates an enrollment rule; a rule with a token returns it (shown once, stored hashed). */
  async addRule(name: string, input: RuleInput): Promise<{ rule: EnrollmentRule; token?: string }> {
    const problem = ruleProblem(input);
    if (problem) throw new TrustError(400, problem.code, problem.message);
    const token = input.kind === 'token' || input.withToken ? randomBytes(24).toString('base64url') : undefined;
    const rule = await this.o.store.enrollmentRules.create({
      name,
      spec: ruleSpec(input, token ? sha256Hex(token) : undefined),
      status: { phase: 'active', conditions: [], uses: 0, admitted: [] },
    });
    if (rule.spec.unauthenticated) this.o.log.warn({ rule: name }, 'enrollment rule admits on claims alone (unauthenticated)');
    return { rule, token };
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
    await this.certs.record(cert, 'principal', `CN=${h.name}`, h.id);
    return cert;
  }

  /**
   * An operator revokes certificates of any profile: one by serial, or every one issued to a name
   * (of `profile`, when the name holds certificates of several). Revoking again is no error.
   */
  async revokeCertificates(ref: string, profile?: string): Promise<Certificate[]> {
    const sel = await this.certs.revokeRef(ref, profile);
    if (!('certs' in sel)) throw new TrustError(sel.status, sel.code, sel.message);
    this.o.log.warn({ ref, serials: sel.certs.map((c) => c.name) }, 'certificates revoked by an operator');
    return sel.certs;
  }
}
