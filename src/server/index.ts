/**
 * Starts a controller: store, trust (CA, server certificate, enrollment), reconcilers, the agent
 * hub and the API on one TLS socket, and the discovery responder.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from '../api/index.ts';
import { buildApi } from '../api/index.ts';
import { createLogger } from '../common/log.ts';
import { ensurePrivateDir, loadOrCreateSecret } from '../common/secrets.ts';
import { VERSION } from '../common/version.ts';
import { DiscoveryResponder } from '../discovery/index.ts';
import { isWildcard, localAddressToward } from '../common/route-source.ts';
import type { Capabilities } from '../discovery/index.ts';
import type { ControllerInfo } from '../discovery/index.ts';
import { DEFAULT_TENANT } from '../model/tenant.ts';
import { generateKeyPair, x509 } from '../pki/index.ts';
import { ConflictError, openStore, type Store } from '../store/index.ts';
import {
  AgentHub,
  Controller,
  realClock,
  ImageFiles,
  createMetrics,
  DEFAULT_ALLOCATION_POLICY,
  type AllocationPolicy,
  type PendingLimits,
  TrustService,
} from '../controller/index.ts';

export const DEFAULT_FEATURES = ['mtls', 'kvm', 'tcg', 'volumes'];

export interface ControllerConfig {
  /** The controller's own directory: database, image files, PKI. */
  dataDir: string;
  host: string;
  port: number;
  /** Where the admin token and a copy of the CA certificate go for the CLI (default: dataDir/..). */
  clientDir?: string;
  heartbeatMs?: number;
  lostAfterMs?: number;
  resyncMs?: number;
  allocation?: Partial<AllocationPolicy>;
  log?: Logger;
  /** What this controller offers hosts that discover it. */
  cluster?: { name?: string; labels?: Record<string, string>; features?: string[] };
  /** UDP discovery responder; off when absent. Declines are silent unless answerDeclines. */
  discovery?: { port?: number; group?: string; address?: string; answerDeclines?: boolean; ratePerSource?: number };
  /** The URL agents are told to use (default: https on the listen address). */
  advertiseUrl?: string;
  /** Extra names/addresses for the server certificate. */
  serverNames?: string[];
  hostCertDays?: number;
  /** How many hosts may wait for approval at once, and how long a request waits (default 200, 1 hour). */
  pendingHosts?: Partial<PendingLimits>;
  /** Memory the discovery nonces may hold, in bytes (see TrustOptions). */
  nonceMemoryBytes?: number;
  /** Limits of the TLS port (defaults: DEFAULT_CONNECTION_LIMITS) and the agent stream's hello deadline (default 10 s). */
  connections?: Partial<ConnectionLimits> & { helloTimeoutMs?: number };
  /** Where backups go unless they name a repository (a path every host sees; default: dataDir/backups). */
  backupRepository?: string;
}

export interface RunningController {
  url: string;
  store: Store;
  controller: Controller;
  trust: TrustService;
  adminToken: string;
  adminTokenFile: string;
  caFile: string;
  discoveryPort?: number;
  close(): Promise<void>;
}

async function ensureDefaultTenant(store: Store): Promise<void> {
  if (await store.tenants.find(DEFAULT_TENANT)) return;
  try {
    await store.tenants.create({ name: DEFAULT_TENANT, spec: {}, status: { phase: 'active', conditions: [] } });
  } catch (e) {
    if (!(e instanceof ConflictError)) throw e;
  }
}

async function controllerId(dir: string): Promise<string> {
  const p = join(dir, 'controller-id');
  if (existsSync(p)) return (await readFile(p, 'utf8')).trim();
  const id = `ctl-${randomBytes(8).toString('hex')}`;
  await writeFile(p, id + '\n');
  return id;
}

/**
 * The certificate discovery answers are signed with: the controller profile, named by the
 * controller's id only. Not the TLS server certificate, which lists the hostname and every local
 * address (strangers get those from no UDP answer) and grows with them (answers must fit in the
 * padded request). Made at each start, like the server certificate.
 */
async function discoverySigner(trust: TrustService, id: string): Promise<{ der: Buffer; keyPem: string }> {
  const pair = generateKeyPair();
  const cert = await trust.ca.issue('server', { name: id, dnsNames: [id] }, pair.publicKey, 90);
  return { der: Buffer.from(new x509.X509Certificate(cert.pem).rawData), keyPem: pair.privateKey };
}

export async function startController(cfg: ControllerConfig): Promise<RunningController> {
  const log = cfg.log ?? createLogger('controller');
  await ensurePrivateDir(cfg.dataDir);
  const clientDir = cfg.clientDir ?? join(cfg.dataDir, '..');
  await ensurePrivateDir(clientDir);
  const adminTokenFile = join(clientDir, 'admin-token');
  const adminToken = await loadOrCreateSecret(adminTokenFile);
  let countQuery = () => undefined as void;
  const store = await openStore({ kind: 'sqlite', path: join(cfg.dataDir, 'outrig.db'), onQuery: () => countQuery(), cache: true });
  await ensureDefaultTenant(store);
  const trust = await TrustService.start({
    pkiDir: join(cfg.dataDir, 'pki'),
    store,
    log,
    serverNames: [...(cfg.serverNames ?? []), ...(cfg.advertiseUrl ? [new URL(cfg.advertiseUrl).hostname.replace(/^\[|\]$/g, '')] : [])],
    hostCertDays: cfg.hostCertDays,
    pendingHosts: cfg.pendingHosts,
    nonceMemoryBytes: cfg.nonceMemoryBytes,
  });
  const caFile = join(clientDir, 'ca.crt');
  await writeFile(caFile, trust.ca.certPem);

  const heartbeatMs = cfg.heartbeatMs ?? 10_000;
  let hub: AgentHub | undefined;
  const metrics = createMetrics(
    store,
    {
      connectedAgents: () => hub?.connectedHostIds().length ?? 0,
      consoles: () => hub?.consoleStats() ?? { streams: 0, bufferedBytes: 0, awaitingCredit: 0 },
    },
    () => trust.nonces.bytes,
  );
  countQuery = () => metrics.storeQueries.inc();
  const controller = new Controller(store, {
    lostAfterMs: cfg.lostAfterMs ?? heartbeatMs * 5,
    resyncMs: cfg.resyncMs,
    allocation: { ...DEFAULT_ALLOCATION_POLICY, ...cfg.allocation },
    clock: realClock,
    log,
    metrics,
    backup: {
      defaultRepository: cfg.backupRepository ?? join(cfg.dataDir, 'backups'),
      // Next to the admin token: an operator can open the cluster's repository with the standalone commands.
      passphrase: await loadOrCreateSecret(join(clientDir, 'backup-passphrase')),
    },
  });
  hub = new AgentHub(
    (peer) => (peer.kind === 'host' ? { hostId: peer.hostId, serial: peer.serial } : { reason: peer.kind === 'none' ? peer.reason : 'not a host certificate' }),
    trust,
    heartbeatMs,
    {
      ...controller.agentEvents,
      onAnswerDropped: (_h, kind, reason) => metrics.agentAnswersDropped.inc({ kind, reason }),
      onConsoleOverrun: () => metrics.consoleOverruns.inc(),
    },
    log,
    cfg.connections?.helloTimeoutMs,
    () => metrics.connectionsClosed.inc({ reason: 'hello-timeout' }),
  );
  controller.attachHub(hub);

  const id = await controllerId(cfg.dataDir);
  const capabilities = async (): Promise<Capabilities> => ({
    cluster: cfg.cluster?.name ?? 'outrig',
    clusterLabels: cfg.cluster?.labels ?? {},
    version: VERSION,
    features: cfg.cluster?.features ?? DEFAULT_FEATURES,
    tenants: (await store.tenants.list()).map((t) => t.name),
    networks: [],
  });
  let url = '';
  const info = async (): Promise<ControllerInfo> => ({
    id,
    name: hostname(),
    version: VERSION,
    endpoint: cfg.advertiseUrl ?? url,
    cluster: cfg.cluster?.name ?? 'outrig',
    features: cfg.cluster?.features ?? DEFAULT_FEATURES,
    hosts: await store.hosts.count(),
  });
  const signer = await discoverySigner(trust, id);
  const responder = new DiscoveryResponder({
    group: cfg.discovery?.group,
    port: cfg.discovery?.port,
    address: cfg.discovery?.address,
    ratePerSource: cfg.discovery?.ratePerSource,
    answerDeclines: cfg.discovery?.answerDeclines ?? false,
    capabilities,
    // Listening on every address, the URL told to a host is the one it can reach: the address that routes to it.
    endpoint: async (source) => {
      if (cfg.advertiseUrl || !isWildcard(cfg.host)) return cfg.advertiseUrl ?? url;
      const local = await localAddressToward(source);
      return local ? `https://${local.includes(':') ? `[${local}]` : local}:${new URL(url).port}` : url;
    },
    issueNonce: (d) => trust.nonces.issue(d),
    caCertDer: trust.caDer,
    nodeCertDer: signer.der,
    nodeKeyPem: signer.keyPem,
    onDrop: (reason) => metrics.discoveryDropped.inc({ reason }),
    onAnswer: (kind) => metrics.discoveryAnswers.inc({ kind }),
    log,
  });

  const app = await buildApi(
    { store, controller, hub, trust, responder, imageFiles: new ImageFiles(join(cfg.dataDir, 'images')), metrics, adminToken, version: VERSION, info },
    log,
    { key: trust.server.keyPem, cert: trust.server.certPem, ca: trust.ca.certPem },
    { ...DEFAULT_CONNECTION_LIMITS, ...cfg.connections },
  );
  hub.attach(app.server);
  await app.listen({ host: cfg.host, port: cfg.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  url = `https://${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host === '0.0.0.0' ? '127.0.0.1' : cfg.host}:${port}`;
  let discoveryPort: number | undefined;
  if (cfg.discovery) discoveryPort = await responder.start();
  await controller.start();
  // Requests for approval expire also when nobody enrolls (each new request expires old ones first).
  const expiry = setInterval(
    () => void trust.expirePending().catch((e: Error) => log.warn({ err: e.message }, 'expiring requests for approval failed')),
    Math.min(60_000, trust.pending.limits.ttlMs),
  );
  expiry.unref();
  log.info({ url, version: VERSION, discoveryPort, caFingerprint: trust.ca.fingerprint }, 'controller listening');

  return {
    url,
    store,
    controller,
    trust,
    adminToken,
    adminTokenFile,
    caFile,
    discoveryPort,
    async close() {
      clearInterval(expiry);
      responder.close();
      await controller.stop();
      hub!.close();
      await app.close();
      await store.close();
    },
  };
}
