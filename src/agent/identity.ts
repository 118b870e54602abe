/**
 * Who this host is and why the controller trusts it: the stable host id and name, and the host's
 * credentials: stored ones, or enrollment the first time; renewed while the agent runs.
 */
import { X509Certificate } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { httpsRequest } from '../common/https.ts';
import { createCsr } from '../pki/index.ts';
import { generateKeyPair, type KeyPairPem } from '../pki/index.ts';
import { CredentialStore, lifetimeLeft, type Credentials } from './credentials.ts';
import { enrollWithRetry, type JoinMode } from './enroll.ts';
import { loadHostId } from './host-identity.ts';

interface HostIdentity {
  hostId: string;
  name: string;
}

/** The host id (kept under dataDir) and the name: the one given, else the host name made DNS-label safe. */
export async function hostIdentity(dataDir: string, name?: string): Promise<HostIdentity> {
  return {
    hostId: await loadHostId(join(dataDir, 'host-id')),
    name:
      name ??
      hostname()
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '-')
        .slice(0, 63),
  };
}

interface JoinOptions {
  mode: JoinMode;
  bootstrapToken?: string;
  /** Longest wait between enrollment attempts. */
  maxBackoffMs: number;
}

const RENEW_CHECK_MS = 3_600_000;

/** This host's credentials: loaded or enrolled by `establish`, then read through `tls()` (so renewals apply). */
export class HostTrust {
  private readonly store: CredentialStore;
  private creds?: Credentials;
  private keys?: KeyPairPem;
  private renewTimer?: NodeJS.Timeout;

  constructor(
    dataDir: string,
    private readonly identity: HostIdentity,
    private readonly log: Logger,
  ) {
    this.store = new CredentialStore(dataDir);
  }

  /** The host key and the cluster CA as files (the 802.1X supplicant reads them). */
  get keyPath(): string {
    return this.store.keyPath;
  }

  get caPath(): string {
    return this.store.caPath;
  }

  /** A stored certificate, or enrollment (discovery, CSR, perhaps an operator's approval). */
  async establish(join: JoinOptions): Promise<void> {
    this.keys = await this.store.keys();
    let creds = await this.store.load();
    if (!creds) {
      creds = await enrollWithRetry({
        identity: { ...this.identity, keys: this.keys },
        mode: join.mode,
        bootstrapToken: join.bootstrapToken,
        log: this.log,
        maxBackoffMs: join.maxBackoffMs,
      });
      await this.store.save(creds);
    }
    this.creds = creds;
  }

  private get current(): { creds: Credentials; keys: KeyPairPem } {
    if (!this.creds || !this.keys) throw new Error('the host has no credentials yet');
    return { creds: this.creds, keys: this.keys };
  }

  get controllerUrl(): string {
    return this.current.creds.controllerUrl;
  }

  /** Mutual TLS with the controller: the pinned CA, this host's certificate and key. */
  readonly tls = (): { ca: string; cert: string; key: string } => {
    const { creds, keys } = this.current;
    return { ca: creds.caPem, cert: creds.certPem, key: keys.privateKey };
  };

  /** Checks now and every hour whether the certificate wants renewing; `renewed` follows each renewal. */
  startRenewal(renewed: () => void): void {
    const attempt = () =>
      void this.renew()
        .then((done) => done && renewed())
        .catch((e: Error) => this.log.warn({ err: e.message }, 'certificate renewal failed; will retry'));
    this.renewTimer = setInterval(attempt, RENEW_CHECK_MS);
    this.renewTimer.unref();
    attempt();
  }

  stop(): void {
    clearInterval(this.renewTimer);
  }

  /**
   * Renews the certificate (with a new key) once a third of its lifetime is left. The controller
   * revokes the old one at once, so whatever was opened with it must be dialled again.
   */
  private async renew(): Promise<boolean> {
    const { creds } = this.current;
    if (lifetimeLeft(creds.certPem) > 1 / 3) return false;
    const next = generateKeyPair();
    const csr = await createCsr(this.identity.hostId, next);
    const res = await httpsRequest(`${creds.controllerUrl}/v1/agent/renew`, {
      method: 'POST',
      body: JSON.stringify({ csr }),
      headers: { 'content-type': 'application/json' },
      tls: this.tls(),
    });
    if (res.status !== 200) throw new Error(`renewal refused: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
    const renewed: Credentials = { ...creds, certPem: res.json<{ certificate: string }>().certificate };
    await this.store.save(renewed, next);
    this.creds = renewed;
    this.keys = next;
    this.log.info({ notAfter: new X509Certificate(renewed.certPem).validTo }, 'certificate renewed');
    return true;
  }
}
