/**
 * The agent's identity and trust material, under its data directory (pki/, 0700):
 * host.key (0600) and host.pub: the key it proves in discovery and certifies;
 * host.crt: its current certificate; ca.crt: the pinned cluster CA; controller.json: where to connect.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, type KeyPairPem } from '../pki/keys.ts';

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

  private p(name: string): string {
    return join(this.dir, name);
  }

  async keys(): Promise<KeyPairPem> {
    if (existsSync(this.p('host.key')) && existsSync(this.p('host.pub'))) {
      return { privateKey: await readFile(this.p('host.key'), 'utf8'), publicKey: await readFile(this.p('host.pub'), 'utf8') };
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const pair = generateKeyPair();
    await this.writeSecret('host.key', pair.privateKey);
    await writeFile(this.p('host.pub'), pair.publicKey);
    return pair;
  }

  private async writeSecret(name: string, data: string): Promise<void> {
    await writeFile(this.p(name) + '.tmp', data, { mode: 0o600 });
    await chmod(this.p(name) + '.tmp', 0o600);
    await rename(this.p(name) + '.tmp', this.p(name));
  }

  async load(): Promise<Credentials | null> {
    if (!existsSync(this.p('host.crt')) || !existsSync(this.p('controller.json'))) return null;
    const c = JSON.parse(await readFile(this.p('controller.json'), 'utf8')) as { url: string; caFingerprint: string };
    return { certPem: await readFile(this.p('host.crt'), 'utf8'), caPem: await readFile(this.p('ca.crt'), 'utf8'), controllerUrl: c.url, caFingerprint: c.caFingerprint };
  }

  async save(c: Credentials, keys?: KeyPairPem): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (keys) {
      await this.writeSecret('host.key', keys.privateKey);
      await writeFile(this.p('host.pub'), keys.publicKey);
    }
    await writeFile(this.p('ca.crt'), c.caPem);
    await writeFile(this.p('host.crt') + '.tmp', c.certPem);
    await rename(this.p('host.crt') + '.tmp', this.p('host.crt'));
    await writeFile(this.p('controller.json'), JSON.stringify({ url: c.controllerUrl, caFingerprint: c.caFingerprint }, null, 2) + '\n');
  }
}

/** Fraction of its lifetime a certificate has left. */
export function lifetimeLeft(certPem: string, now = Date.now()): number {
  const c = new X509Certificate(certPem);
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  return (to - now) / Math.max(1, to - from);
}
