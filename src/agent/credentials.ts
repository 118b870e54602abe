/**
 * The agent's identity and trust material, under its data directory (pki/, 0700):
 * host.key (0600) and host.pub: the key it proves in discovery and certifies;
 * host.crt: its current certificate; ca.crt: the pinned cluster CA; controller.json: where to connect.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, type KeyPairPem } from '../pki/index.ts';

export interface Credentials {
  certPem: string;
  caPem: string;
  controllerUrl: string;
  caFingerprint: string;
}

export class CredentialStore {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'pki');
  }

  /** The host key and the cluster CA as files (the 802.1X supplicant reads them). */
  get keyPath(): string {
    return this.p('host.key');
  }

  get caPath(): string {
    return this.p('ca.crt');
  }

  private p(name: string): string {
    return join(this.dir, name);
  }

  async keys(): Promise<KeyPairPem> {
    await this.recover();
    if (existsSync(this.p('host.key')) && existsSync(this.p('host.pub'))) {
      return { privateKey: await readFile(this.p('host.key'), 'utf8'), publicKey: await readFile(this.p('host.pub'), 'utf8') };
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const pair = generateKeyPair();
    await this.writeFile('host.key.new', pair.privateKey, 0o600);
    await this.writeFile('host.pub.new', pair.publicKey, 0o644);
    await rename(this.p('host.pub.new'), this.p('host.pub'));
    await rename(this.p('host.key.new'), this.p('host.key'));
    return pair;
  }

  private async writeFile(name: string, data: string, mode: number): Promise<void> {
    await writeFile(this.p(name), data, { mode });
    await chmod(this.p(name), mode);
  }

  /**
   * A rotation writes every new file as `*.new`, the certificate last, then renames them into
   * place. A `host.crt.new` therefore means the set is complete: finish the renames, so a crash
   * never leaves a certificate beside a key it does not belong to.
   */
  private async recover(): Promise<void> {
    if (!existsSync(this.p('host.crt.new'))) return;
    for (const f of ['host.key', 'host.pub', 'ca.crt', 'controller.json', 'host.crt'])
      if (existsSync(this.p(`${f}.new`))) await rename(this.p(`${f}.new`), this.p(f));
  }

  async load(): Promise<Credentials | null> {
    await this.recover();
    if (!existsSync(this.p('host.crt')) || !existsSync(this.p('controller.json'))) return null;
    const c = JSON.parse(await readFile(this.p('controller.json'), 'utf8')) as { url: string; caFingerprint: string };
    return {
      certPem: await readFile(this.p('host.crt'), 'utf8'),
      caPem: await readFile(this.p('ca.crt'), 'utf8'),
      controllerUrl: c.url,
      caFingerprint: c.caFingerprint,
    };
  }

  /** Stores new credentials (and, on a rotation, the new key) so that a crash leaves either the old set or the new. */
  async save(c: Credentials, keys?: KeyPairPem): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (keys) {
      await this.writeFile('host.key.new', keys.privateKey, 0o600);
      await this.writeFile('host.pub.new', keys.publicKey, 0o644);
    }
    await this.writeFile('ca.crt.new', c.caPem, 0o644);
    await this.writeFile('controller.json.new', JSON.stringify({ url: c.controllerUrl, caFingerprint: c.caFingerprint }, null, 2) + '\n', 0o644);
    await this.writeFile('host.crt.new', c.certPem, 0o644);
    await this.recover();
  }
}

/** Fraction of its lifetime a certificate has left. */
export function lifetimeLeft(certPem: string, now = Date.now()): number {
  const c = new X509Certificate(certPem);
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  return (to - now) / Math.max(1, to - from);
}
