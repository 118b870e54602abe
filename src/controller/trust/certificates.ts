/**
 * The certificates the cluster CA issued: which ones an operator's reference means (pure: a serial,
 * or a subject name), and the record of them: revocation, the CRL, and who a TLS peer is.
 */
import type { X509Certificate as NodeX509 } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import type { PeerCertificate } from 'node:tls';
import type { Certificate } from '../../model/trust.ts';
import { generateKeyPair, type ClusterCa, type IssuedCertificate } from '../../pki/index.ts';
import type { Store } from '../../store/index.ts';
import { StatusWriter } from '../runtime/status-writer.ts';

/** Serial numbers as one spelling: lower-case hex without leading zeros. */
export function normSerial(s: string): string {
  return s.toLowerCase().replace(/^0+/, '');
}

/** The name a certificate was issued to: its subject's CN. */
export function subjectName(c: Certificate): string {
  return /^CN=([^,]*)/.exec(c.spec.subject)?.[1] ?? c.spec.subject;
}

export type Peer = { kind: 'host'; hostId: string; serial: string } | { kind: 'operator'; name: string } | { kind: 'none'; reason: string };

type CertificateSelection = { certs: Certificate[] } | { status: 404 | 409; code: string; message: string };

/**
 * A serial (or record id) means that certificate; a name means every certificate issued to that
 * name, of one profile. A reference that is both a serial and a name, or a name held under two
 * profiles without `profile` to choose, is refused rather than guessed.
 */
export function selectCertificates(all: Certificate[], ref: string, profile?: string): CertificateSelection {
  const ofProfile = (c: Certificate) => !profile || c.spec.profile === profile;
  const bySerial = /^[0-9a-f]+$/i.test(ref) ? all.filter((c) => normSerial(c.name) === normSerial(ref)) : all.filter((c) => c.id === ref);
  const byName = all.filter((c) => subjectName(c) === ref);
  if (bySerial.length && byName.length)
    return { status: 409, code: 'ambiguous_ref', message: `'${ref}' is both a serial and a certificate name; use the serial of one certificate` };
  const found = (bySerial.length ? bySerial : byName).filter(ofProfile);
  if (!found.length) return { status: 404, code: 'not_found', message: `no ${profile ? `${profile} ` : ''}certificate with serial or name '${ref}'` };
  const profiles = [...new Set(found.map((c) => c.spec.profile))];
  if (profiles.length > 1)
    return {
      status: 409,
      code: 'ambiguous_ref',
      message: `'${ref}' names certificates of profiles ${profiles.join(', ')}: choose one with profile (--profile)`,
    };
  return { certs: found };
}

/**
 * Every certificate the CA issues, recorded by serial, and which are revoked: kept in memory (the
 * TLS checks ask on every connection and request) and published as the CRL.
 */
export class CertificateRecords {
  private readonly revoked = new Set<string>();
  private crlCache?: { key: string; pem: string; madeAt: number };

  private readonly status = new StatusWriter();

  constructor(
    private readonly store: Store,
    private readonly ca: ClusterCa,
  ) {}

  async load(): Promise<void> {
    for (const c of await this.store.certificates.list()) if (c.status.phase === 'revoked') this.revoked.add(normSerial(c.name));
  }

  async record(cert: IssuedCertificate, profile: string, subject: string, hostId?: string): Promise<void> {
    await this.store.certificates.create({
      name: cert.serial,
      spec: { profile, subject, hostId, fingerprint: cert.fingerprint, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString() },
      status: { phase: 'valid', conditions: [] },
    });
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

  /** Marks the matching valid certificates revoked (stored, then in memory and the CRL); returns them as they are now. */
  async revokeWhere(match: (c: Certificate) => boolean): Promise<Certificate[]> {
    const now = new Date().toISOString();
    const out: Certificate[] = [];
    for (const c of await this.store.certificates.list()) {
      if (!match(c) || c.status.phase === 'revoked') continue;
      out.push(await this.status.record(this.store.certificates, c.id, (cur) => ({ status: { ...cur.status, phase: 'revoked', revokedAt: now } })));
      this.revoked.add(normSerial(c.name));
    }
    return out;
  }

  /** A fresh server certificate (at each start) for every local address and name, and its key. */
  async issueServer(extraNames: string[]): Promise<{ certPem: string; keyPem: string; der: Buffer }> {
    const ips = new Set<string>(['127.0.0.1', '::1']);
    for (const addrs of Object.values(networkInterfaces())) for (const a of addrs ?? []) ips.add(a.address);
    const dns = new Set<string>(['localhost', hostname()]);
    for (const n of extraNames) (/^[\d.]+$|:/.test(n) ? ips : dns).add(n);
    const pair = generateKeyPair();
    const cert = await this.ca.issue('server', { name: hostname(), ips: [...ips], dnsNames: [...dns] }, pair.publicKey, 90);
    await this.record(cert, 'server', `CN=${hostname()}`);
    return { certPem: cert.pem, keyPem: pair.privateKey, der: Buffer.from(cert.pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64') };
  }

  /** The server certificate of a port authenticator (the RADIUS server hosts' supplicants check against the cluster CA). */
  async issueAuthenticator(name: string, publicKeyPem: string): Promise<IssuedCertificate> {
    const cert = await this.ca.issue('authenticator', { name, dnsNames: [name] }, publicKeyPem, 365);
    await this.record(cert, 'authenticator', `CN=${name}`);
    return cert;
  }

  /** An operator client certificate (for operators who prefer certificates to tokens). */
  async issueOperator(name: string, publicKeyPem: string): Promise<IssuedCertificate> {
    const cert = await this.ca.issue('operator', { name }, publicKeyPem, 365);
    await this.record(cert, 'operator', `CN=${name}`);
    return cert;
  }

  /** Revokes one certificate by serial (a principal whose host left its cluster). */
  async revokeSerial(serial: string): Promise<void> {
    await this.revokeWhere((c) => normSerial(c.name) === normSerial(serial));
  }

  /** Revokes what an operator's reference selects (selectCertificates); revoking again is no error. */
  async revokeRef(ref: string, profile?: string): Promise<CertificateSelection> {
    const sel = selectCertificates(await this.store.certificates.list(), ref, profile);
    if (!('certs' in sel)) return sel;
    const ids = new Set(sel.certs.map((c) => c.id));
    await this.revokeWhere((c) => ids.has(c.id));
    return { certs: await Promise.all(sel.certs.map(async (c) => (await this.store.certificates.get(c.id)) ?? c)) };
  }

  /**
   * The CA's current revocation list (PEM). The same bytes until a revocation changes it or half
   * its day of validity has passed, so readers can tell a new list from a re-signed old one.
   */
  async crl(): Promise<string> {
    const revoked = (await this.store.certificates.list()).filter((c) => c.status.phase === 'revoked');
    const key = revoked
      .map((c) => c.name)
      .sort()
      .join(',');
    const c = this.crlCache;
    if (c && c.key === key && Date.now() - c.madeAt < 12 * 3_600_000) return c.pem;
    const pem = await this.ca.crl(revoked.map((x) => ({ serial: x.name, at: new Date(x.status.revokedAt ?? x.updatedAt) })));
    this.crlCache = { key, pem, madeAt: Date.now() };
    return pem;
  }
}
