/**
 * The host side of port authentication: wpa_supplicant (wired driver, EAP-TLS) on the host's
 * dedicated NIC, with the instance principal certificate its cluster's CA issued for the host's
 * own key. The certificate arrives over the agent stream; the key never leaves the host.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { PORT_AUTH_REQUIREMENTS, requireTools } from '../common/system-requirements.ts';
import { vnetSegments, x509 } from '../pki/index.ts';

const exec = promisify(execFile);

export function wpaSupplicantConfig(o: { ctrlDir: string; identity: string; ca: string; cert: string; key: string }): string {
  return [
    `ctrl_interface=${o.ctrlDir}`,
    // Wired: no scanning, no WPA keys after EAP.
    'ap_scan=0',
    'network={',
    '  key_mgmt=IEEE8021X',
    '  eap=TLS',
    '  eapol_flags=0',
    `  identity="${o.identity}"`,
    `  ca_cert="${o.ca}"`,
    `  client_cert="${o.cert}"`,
    `  private_key="${o.key}"`,
    '}',
    '',
  ].join('\n');
}

export class Supplicant {
  private readonly dir: string;

  constructor(private readonly o: { dataDir: string; port?: string; identity: string; keyPath: string; caPath: string; log: Logger }) {
    this.dir = join(o.dataDir, 'dot1x');
  }

  private get certPath(): string {
    return join(this.dir, 'principal.crt');
  }

  private get pidPath(): string {
    return join(this.dir, 'wpa_supplicant.pid');
  }

  /** The networks this host's principal names (the first is its port's), none without one. */
  segments(): number[] {
    if (!existsSync(this.certPath)) return [];
    return vnetSegments(new x509.X509Certificate(readFileSync(this.certPath, 'utf8')));
  }

  get port(): string | undefined {
    return this.o.port;
  }

  /** Installs (or, with no certificate, removes) the principal and (re)starts the supplicant. */
  async apply(certificate: string | undefined): Promise<void> {
    if (certificate && !this.o.port)
      throw new Error('this host has no dedicated port (outrig agent --dedicated-port IF): it cannot authenticate a switch port');
    await this.stop();
    if (!certificate) {
      rmSync(this.certPath, { force: true });
      this.o.log.info('principal certificate removed; 802.1X supplicant stopped');
      return;
    }
    requireTools(
      PORT_AUTH_REQUIREMENTS.filter((r) => r.pkg === 'wpasupplicant'),
      '802.1X port authentication',
    );
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileSync(this.certPath, certificate);
    await this.start();
  }

  /** At agent start: a principal from before is put to use again. */
  async resume(): Promise<void> {
    if (existsSync(this.certPath) && this.o.port && !this.running()) await this.start();
  }

  private running(): boolean {
    if (!existsSync(this.pidPath)) return false;
    const pid = Number(readFileSync(this.pidPath, 'utf8').trim());
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  private async start(): Promise<void> {
    const conf = join(this.dir, 'wpa_supplicant.conf');
    writeFileSync(
      conf,
      wpaSupplicantConfig({ ctrlDir: join(this.dir, 'ctrl'), identity: this.o.identity, ca: this.o.caPath, cert: this.certPath, key: this.o.keyPath }),
      { mode: 0o600 },
    );
    await exec('ip', ['link', 'set', this.o.port!, 'up']);
    await exec('wpa_supplicant', ['-B', '-D', 'wired', '-i', this.o.port!, '-c', conf, '-P', this.pidPath, '-f', join(this.dir, 'wpa_supplicant.log'), '-t']);
    this.o.log.info({ port: this.o.port, segments: this.segments() }, '802.1X supplicant started with the principal certificate');
  }

  async stop(): Promise<void> {
    if (!this.running()) return;
    const pid = Number(readFileSync(this.pidPath, 'utf8').trim());
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && this.running(); i++) await new Promise((r) => setTimeout(r, 50));
    rmSync(this.pidPath, { force: true });
  }
}
