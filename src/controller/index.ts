/** Starts a controller: store, reconcilers, agent hub and API on one listening socket. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { buildApi } from '../api/server.ts';
import { createLogger } from '../common/log.ts';
import { loadOrCreateSecret } from '../common/secrets.ts';
import { VERSION } from '../common/version.ts';
import { DEFAULT_TENANT } from '../model/tenant.ts';
import { ConflictError, openStore, type Store } from '../store/index.ts';
import { AgentHub } from './agent-hub.ts';
import { Controller } from './controller.ts';
import { ImageFiles } from './image-files.ts';
import { createMetrics } from './metrics.ts';
import { DEFAULT_ALLOCATION_POLICY, type AllocationPolicy } from './scheduler.ts';

export interface ControllerConfig {
  /** The controller's own directory: database, image files, join token. */
  dataDir: string;
  host: string;
  port: number;
  heartbeatMs?: number;
  lostAfterMs?: number;
  resyncMs?: number;
  allocation?: Partial<AllocationPolicy>;
  log?: Logger;
}

export interface RunningController {
  url: string;
  joinToken: string;
  joinTokenFile: string;
  store: Store;
  controller: Controller;
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

export async function startController(cfg: ControllerConfig): Promise<RunningController> {
  const log = cfg.log ?? createLogger('controller');
  await mkdir(cfg.dataDir, { recursive: true, mode: 0o700 });
  const joinTokenFile = join(cfg.dataDir, 'join-token');
  const joinToken = await loadOrCreateSecret(joinTokenFile);
  const store = await openStore({ kind: 'sqlite', path: join(cfg.dataDir, 'outrig.db') });
  await ensureDefaultTenant(store);

  const heartbeatMs = cfg.heartbeatMs ?? 2000;
  let hub: AgentHub | undefined;
  const metrics = createMetrics(store, () => hub?.connectedHostIds().length ?? 0);
  const controller = new Controller(store, {
    lostAfterMs: cfg.lostAfterMs ?? heartbeatMs * 5,
    resyncMs: cfg.resyncMs ?? 10_000,
    allocation: { ...DEFAULT_ALLOCATION_POLICY, ...cfg.allocation },
    clock: () => new Date(),
    log,
    metrics,
  });
  hub = new AgentHub(joinToken, heartbeatMs, {
    onHello: (m) => controller.onHello(m),
    onReport: (h, changed, first) => controller.onReport(h, changed, first),
    onOpResult: (h, op, r) => controller.onOpResult(h, op, r),
    onDisconnect: (h) => void controller.onDisconnect(h).catch((e) => log.error({ err: e }, 'disconnect handling failed')),
  }, log);
  controller.attachHub(hub);

  const app = await buildApi({ store, controller, hub, imageFiles: new ImageFiles(join(cfg.dataDir, 'images')), metrics, joinToken, version: VERSION }, log);
  hub.attach(app.server);
  await app.listen({ host: cfg.host, port: cfg.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.port;
  const url = `http://${cfg.host.includes(':') ? `[${cfg.host}]` : cfg.host}:${port}`;
  await controller.start();
  log.info({ url, version: VERSION }, 'controller listening');

  return {
    url,
    joinToken,
    joinTokenFile,
    store,
    controller,
    async close() {
      controller.stop();
      hub!.close();
      await app.close();
      await store.close();
    },
  };
}
