/**
 * The switch side of dedicated host clusters. hostapd (driver=wired) is the 802.1X authenticator
 * on each port, FreeRADIUS the EAP-TLS server (freeradius.ts); neither gates traffic, so this
 * controller does: a port joins the bridge of the network its host's principal certificate names
 * only once hostapd has authorized it and RADIUS accepted it, and leaves it on disconnect,
 * failure or revocation. The cluster's CRL is polled; a revoked principal's port is taken out at
 * once (hostapd deauthenticates it, and FreeRADIUS restarts with the new CRL so it cannot come back).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { PORT_AUTH_REQUIREMENTS, requireTools } from '../common/system-requirements.ts';
import { x509 } from '../pki/index.ts';
import {
  decisionKey,
  expiredDecisions,
  nextPortState,
  parseDecision,
  parseHostapdEvent,
  revokedPorts,
  switchBridgeName,
  type Decision,
  type PortState,
} from './events.ts';
import { radiusConfig, radiusDictionary } from './freeradius.ts';

const exec = promisify(execFile);

export interface PortControllerOptions {
  ports: string[];
  stateDir: string;
  /** The cluster CA (PEM) and a function that fetches its current CRL (PEM). */
  caPem: string;
  fetchCrl: () => Promise<string>;
  /** The RADIUS server's certificate and key. */
  certPem: string;
  keyPem: string;
  authPort?: number;
  crlPollMs?: number;
  log: Logger;
  /** Every port state change (tests and the CLI's output). */
  onChange?: (p: PortState) => void;
}

export function hostapdConfig(port: string, ctrlDir: string, authPort: number, secret: string): string {
  return [
    `interface=${port}`,
    'driver=wired',
    'ieee8021x=1',
    'eapol_version=2',
    // The PAE group address reaches a host whatever its MAC, so a port can be asked to authenticate again.
    'use_pae_group_addr=1',
    `ctrl_interface=${ctrlDir}`,
    'eap_server=0',
    'own_ip_addr=127.0.0.1',
    'nas_identifier=outrig-switch',
    // NAS-Port-Id (87) names the port in every request, so a decision is tied to the port it was made for.
    `radius_auth_req_attr=87:s:${port}`,
    'auth_server_addr=127.0.0.1',
    `auth_server_port=${authPort}`,
    `auth_server_shared_secret=${secret}`,
    // VLAN assignment inside hostapd does not work with driver=wired (shared/research/dot1x.md): this controller does it.
    'dynamic_vlan=0',
    '',
  ].join('\n');
}

async function ip(...args: string[]): Promise<void> {
  await exec('ip', args);
}

function udpListening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  // Columns: sl, local_address, ...; sl is right-aligned, so a line may or may not start with spaces.
  return readFileSync('/proc/net/udp', 'utf8')
    .split('\n')
    .some((l) => l.trim().split(/\s+/)[1]?.endsWith(`:${hex}`));
}

export class PortController {
  private readonly ports = new Map<string, PortState>();
  private readonly decisions = new Map<string, Decision>();
  private readonly children: ChildProcess[] = [];
  private radius?: ChildProcess;
  private radiusStartedAt = 0;
  private hostapd?: ChildProcess;
  private crlPem = '';
  private revoked = new Set<string>();
  private timer?: NodeJS.Timeout;
  private decisionsOffset = 0;
  private closed = false;
  private readonly secret = randomBytes(18).toString('base64url');
  private readonly authPort: number;
  private readonly dir: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: PortControllerOptions) {
    this.authPort = o.authPort ?? 18120;
    this.dir = o.stateDir;
    for (const p of o.ports) this.ports.set(p, { port: p, reason: 'not authenticated yet' });
  }

  private path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  state(): PortState[] {
    return [...this.ports.values()];
  }

  async start(): Promise<void> {
    requireTools(
      PORT_AUTH_REQUIREMENTS.filter((r) => r.pkg !== 'wpasupplicant'),
      'the port controller',
    );
    for (const d of ['raddb/run', 'raddb/log', 'hostapd']) mkdirSync(this.path(d), { recursive: true, mode: 0o700 });
    writeFileSync(this.path('radius.crt'), this.o.certPem);
    writeFileSync(this.path('radius.key'), this.o.keyPem, { mode: 0o600 });
    writeFileSync(this.path('decisions.log'), '', { mode: 0o600 });
    // Ports start in no network, whatever they were in before.
    for (const p of this.o.ports) await ip('link', 'set', p, 'nomaster').catch(() => undefined);
    for (const p of this.o.ports) await ip('link', 'set', p, 'up');
    await this.loadCrl(await this.o.fetchCrl());
    await this.startRadius();
    this.startHostapd();
    this.timer = setInterval(() => void this.pollCrl(), this.o.crlPollMs ?? 2000);
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch((e: Error) => this.o.log.error({ err: e.message }, 'port controller step failed'));
    return run;
  }

  private async loadCrl(pem: string): Promise<void> {
    const crl = new x509.X509Crl(pem);
    this.revoked = new Set(crl.entries.map((e) => e.serialNumber.toLowerCase().replace(/^0+/, '')));
    this.crlPem = pem;
    writeFileSync(this.path('ca-and-crl.pem'), `${this.o.caPem.trimEnd()}\n${pem.trimEnd()}\n`);
  }

  private async startRadius(): Promise<void> {
    writeFileSync(
      this.path('raddb', 'radiusd.conf'),
      radiusConfig({
        paths: {
          dir: this.path('raddb'),
          cert: this.path('radius.crt'),
          key: this.path('radius.key'),
          caAndCrl: this.path('ca-and-crl.pem'),
          decisions: this.path('decisions.log'),
        },
        secret: this.secret,
        authPort: this.authPort,
      }),
      { mode: 0o600 },
    );
    writeFileSync(this.path('raddb', 'dictionary'), radiusDictionary());
    const proc = spawn('freeradius', ['-f', '-d', this.path('raddb'), '-n', 'radiusd'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    proc.stderr!.on('data', (d) => (err += d));
    this.radius = proc;
    const started = Date.now();
    this.radiusStartedAt = started;
    while (!udpListening(this.authPort)) {
      if (proc.exitCode !== null) throw new Error(`freeradius exited (${proc.exitCode}): ${err.trim() || `see ${this.path('raddb', 'log', 'radius.log')}`}`);
      if (Date.now() - started > 15_000)
        throw new Error(
          `freeradius (pid ${proc.pid}) did not start listening on UDP ${this.authPort} within 15 s; /proc/net/udp: ${readFileSync('/proc/net/udp', 'utf8')}`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async stopRadius(): Promise<void> {
    const p = this.radius;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }

  private startHostapd(): void {
    const files = this.o.ports.map((port) => {
      const f = this.path(`hostapd-${port}.conf`);
      writeFileSync(f, hostapdConfig(port, this.path('hostapd'), this.authPort, this.secret), { mode: 0o600 });
      return f;
    });
    const h = spawn('hostapd', ['-t', '-f', this.path('hostapd.log'), ...files], { stdio: 'ignore' });
    this.hostapd = h;
    h.once('exit', (code) => {
      if (!this.closed) this.o.log.error({ code }, `hostapd exited; see ${this.path('hostapd.log')}`);
    });
    for (const port of this.o.ports) this.follow(port);
  }

  /** hostapd_cli in interactive mode prints the port's events as they come; its control socket appears once hostapd is up. */
  private follow(port: string): void {
    const attach = () => {
      if (this.closed) return;
      if (!existsSync(this.path('hostapd', port))) return void setTimeout(attach, 100);
      // stdbuf: hostapd_cli's stdout is block-buffered on a pipe, and events would wait for 4 KiB of others.
      const cli = spawn('stdbuf', ['-oL', 'hostapd_cli', '-p', this.path('hostapd'), '-i', port], { stdio: ['pipe', 'pipe', 'ignore'] });
      this.children.push(cli);
      createInterface({ input: cli.stdout! }).on('line', (line) => {
        const ev = parseHostapdEvent(line);
        if (ev) void this.serialized(() => this.onEvent(port, ev));
      });
      cli.once('exit', () => {
        if (!this.closed) setTimeout(attach, 500);
      });
    };
    attach();
  }

  /** New lines of the decisions file (FreeRADIUS writes a line before it answers hostapd). */
  private async readDecisions(): Promise<void> {
    const f = await open(this.path('decisions.log'), 'r');
    try {
      const { size } = await f.stat();
      if (size <= this.decisionsOffset) return;
      const buf = Buffer.alloc(size - this.decisionsOffset);
      await f.read(buf, 0, buf.length, this.decisionsOffset);
      const text = buf.toString('utf8');
      const complete = text.lastIndexOf('\n') + 1;
      this.decisionsOffset += Buffer.byteLength(text.slice(0, complete));
      for (const line of text.slice(0, complete).split('\n')) {
        const d = parseDecision(line);
        if (d && this.ports.has(d.port)) this.decisions.set(decisionKey(d.port, d.mac), d);
      }
      for (const k of expiredDecisions(this.decisions, Date.now())) this.decisions.delete(k);
    } finally {
      await f.close();
    }
  }

  private async onEvent(port: string, ev: ReturnType<typeof parseHostapdEvent> & object): Promise<void> {
    await this.readDecisions();
    const cur = this.ports.get(port)!;
    let next = nextPortState(cur, ev, this.decisions, Date.now());
    if (next === cur && cur.segment !== undefined && ev.mac !== cur.mac && ev.kind !== 'eap-started') {
      // Someone else on the held port's link (a second host, a guest sending EAPOL through its host's bridge).
      this.o.log.info(
        { port, station: ev.mac, event: ev.kind, holder: cur.mac, cn: cur.cn },
        `another station's ${ev.kind} changes nothing: port ${port} stays with ${cur.mac}`,
      );
    }
    if (next.serial && this.revoked.has(next.serial)) next = { port, mac: next.mac, reason: `principal ${next.serial} is revoked` };
    await this.apply(cur, next);
  }

  private async apply(cur: PortState, next: PortState): Promise<void> {
    if (next.segment !== cur.segment) {
      if (next.segment === undefined) await ip('link', 'set', next.port, 'nomaster');
      else {
        const br = switchBridgeName(next.segment);
        if (!existsSync(`/sys/class/net/${br}`)) {
          await ip('link', 'add', br, 'type', 'bridge');
          await ip('link', 'set', br, 'up');
        }
        await ip('link', 'set', next.port, 'master', br);
      }
    }
    this.ports.set(next.port, next);
    if (next.segment !== cur.segment || next.reason !== cur.reason) {
      this.o.log.info(
        { port: next.port, mac: next.mac, segment: next.segment, cn: next.cn, reason: next.reason },
        next.segment === undefined ? 'port in no network' : `port in network vnet-${next.segment}`,
      );
      this.o.onChange?.(next);
    }
  }

  private async pollCrl(): Promise<void> {
    if (this.closed) return;
    let pem: string;
    try {
      pem = await this.o.fetchCrl();
    } catch (e) {
      return this.o.log.warn({ err: (e as Error).message }, 'could not fetch the CRL; keeping the last one');
    }
    if (pem === this.crlPem) return;
    const before = [...this.revoked].sort().join(',');
    await this.serialized(async () => {
      await this.loadCrl(pem);
      // Out first, so a revoked host loses its network at once; then RADIUS learns the CRL before the host can come back.
      for (const p of revokedPorts(this.ports.values(), this.revoked)) {
        await this.apply(p, { port: p.port, mac: p.mac, reason: `principal ${p.serial} (${p.cn}) was revoked` });
        await exec('hostapd_cli', ['-p', this.path('hostapd'), '-i', p.port, 'deauthenticate', p.mac!]).catch((e: Error) =>
          this.o.log.warn({ err: e.message }, 'deauthenticate failed'),
        );
      }
      // A re-signed list with the same serials needs no restart (in-flight authentications go on)
      // until the one RADIUS holds gets old: check_crl refuses everyone once a CRL's nextUpdate passes.
      if ([...this.revoked].sort().join(',') === before && Date.now() - this.radiusStartedAt < 12 * 3_600_000) return;
      await this.stopRadius();
      await this.startRadius();
      this.o.log.info({ revoked: this.revoked.size }, 'CRL changed; RADIUS restarted with it');
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const c of this.children) c.kill();
    this.hostapd?.kill();
    await this.stopRadius();
    for (const p of this.o.ports) await ip('link', 'set', p, 'nomaster').catch(() => undefined);
  }
}
