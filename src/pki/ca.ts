/**
 * The cluster CA: created at the controller's first start (key 0600), issues certificates by
 * profile from CSRs, and verifies that a certificate is its own.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, toCryptoKeys, type KeyPairPem } from './keys.ts';
import { extensionsFor, subjectFor, type Profile, type ProfileInput } from './profiles.ts';
import { ALG, x509 } from './x509.ts';

export interface IssuedCertificate {
  pem: string;
  serial: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
}

/** SHA-256 of a certificate's DER, hex: how certificates (and the CA) are pinned. */
export function fingerprintOf(pem: string): string {
  return createHash('sha256')
    .update(Buffer.from(new x509.X509Certificate(pem).rawData))
    .digest('hex');
}

export class ClusterCa {
  private constructor(
    readonly certPem: string,
    private readonly keys: CryptoKeyPair,
    readonly fingerprint: string,
  ) {}

  /** Loads the CA from dir, or creates it (ca.key 0600, ca.crt). */
  static async loadOrCreate(dir: string, name = 'Outrig cluster CA'): Promise<ClusterCa> {
    const keyPath = join(dir, 'ca.key');
    const certPath = join(dir, 'ca.crt');
    if (existsSync(keyPath) && existsSync(certPath)) {
      const pair: KeyPairPem = { privateKey: await readFile(keyPath, 'utf8'), publicKey: '' };
      const certPem = await readFile(certPath, 'utf8');
      pair.publicKey = new x509.X509Certificate(certPem).publicKey.toString('pem');
      return new ClusterCa(certPem, await toCryptoKeys(pair), fingerprintOf(certPem));
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const pair = generateKeyPair();
    const keys = await toCryptoKeys(pair);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomBytes(16).toString('hex'),
      name: `CN=${name}, O=Outrig`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 10 * 365 * 86_400_000),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const certPem = cert.toString('pem');
    await writeFile(keyPath, pair.privateKey, { mode: 0o600 });
    await chmod(keyPath, 0o600);
    await writeFile(certPath, certPem, { mode: 0o644 });
    return new ClusterCa(certPem, keys, fingerprintOf(certPem));
  }

  get cert(): x509.X509Certificate {
    return new x509.X509Certificate(this.certPem);
  }

  /** Issues a certificate for a public key (SPKI PEM or a CSR's key) under a profile. */
  async issue(profile: Profile, input: ProfileInput, publicKey: x509.PublicKey | string, validityDays: number): Promise<IssuedCertificate> {
    const serial = randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '7'); // positive
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(Date.now() + validityDays * 86_400_000);
    const pub = typeof publicKey === 'string' ? new x509.PublicKey(publicKey) : publicKey;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: subjectFor(profile, input.name),
      issuer: this.cert.subject,
      notBefore,
      notAfter,
      signingAlgorithm: ALG,
      publicKey: pub,
      signingKey: this.keys.privateKey,
      extensions: [...extensionsFor(profile, input), await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey)],
    });
    const pem = cert.toString('pem');
    return { pem, serial, fingerprint: fingerprintOf(pem), notBefore, notAfter };
  }

  /**
   * A certificate revocation list of these serials, valid for `hours` (a RADIUS server checking
   * port authentication reads it: revoking a principal takes effect at the next check).
   */
  async crl(revoked: { serial: string; at: Date }[], hours = 24): Promise<string> {
    const now = new Date();
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.cert.subject,
      thisUpdate: new Date(now.getTime() - 60_000),
      nextUpdate: new Date(now.getTime() + hours * 3_600_000),
      signingAlgorithm: ALG,
      signingKey: this.keys.privateKey,
      entries: revoked.map((r) => ({ serialNumber: r.serial, revocationDate: r.at })),
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(this.keys.publicKey)],
    });
    // RFC 7468's label: OpenSSL (and so FreeRADIUS) reads no other; the library writes "CRL".
    return x509.PemConverter.encode(crl.rawData, 'X509 CRL');
  }

  /** True if `pem` was issued by this CA (signature check) and is within its validity. */
  async verify(pem: string, at = new Date()): Promise<boolean> {
    try {
      const c = new x509.X509Certificate(pem);
      return (await c.verify({ publicKey: this.cert.publicKey, date: at })) && c.issuer === this.cert.subject;
    } catch {
      return false;
    }
  }
}
