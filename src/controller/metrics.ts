/** Prometheus metrics of one controller. A registry per controller, so tests can run several. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from '../store/index.ts';

export interface ControllerMetrics {
  registry: Registry;
  apiRequests: Counter<'method' | 'route' | 'status'>;
  agentOps: Counter<'result'>;
  agentAnswersDropped: Counter<'kind' | 'reason'>;
  consoleOverruns: Counter;
  reconcileErrors: Counter<'kind'>;
  reconcileSeconds: Counter<'kind'>;
  reconciles: Counter<'kind'>;
  storeQueries: Counter;
  instanceStart: Histogram;
  discoveryDropped: Counter<'reason'>;
  discoveryAnswers: Counter<'kind'>;
  enrollments: Counter<'result'>;
  connectionsClosed: Counter<'reason'>;
}

/** What the metrics read from the agent hub at scrape time. */
interface HubView {
  connectedAgents(): number;
  consoles(): { streams: number; bufferedBytes: number; awaitingCredit: number };
}

export function createMetrics(store: Store, hub: HubView, nonceBytes: () => number): ControllerMetrics {
  const registry = new Registry();
  // The event-loop lag is sampled by a timer: at prom-client's default 10 ms that alone was 0.7% of a
  // core on an idle controller (bench:controller); lags worth seeing are longer than 100 ms.
  collectDefaultMetrics({ register: registry, prefix: 'outrig_controller_', eventLoopMonitoringPrecision: 100 });
  const byPhase = async (rows: { status: { phase: string } }[], g: Gauge<'phase'>) => {
    g.reset();
    for (const r of rows) g.inc({ phase: r.status.phase });
  };
  new Gauge({
    name: 'outrig_hosts',
    help: 'Hosts by phase',
    labelNames: ['phase'],
    registers: [registry],
    async collect() {
      await byPhase(await store.hosts.list(), this);
    },
  });
  new Gauge({
    name: 'outrig_instances',
    help: 'Instances by phase',
    labelNames: ['phase'],
    registers: [registry],
    async collect() {
      await byPhase(await store.instances.list(), this);
    },
  });
  new Gauge({
    name: 'outrig_agent_connections',
    help: 'Agents connected to this controller',
    registers: [registry],
    collect() {
      this.set(hub.connectedAgents());
    },
  });
  new Gauge({
    name: 'outrig_console_streams',
    help: 'Console streams relayed from agents to API clients: open, and those whose agent waits for a slow client',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = hub.consoles();
      this.set({ state: 'open' }, c.streams);
      this.set({ state: 'awaiting-credit' }, c.awaitingCredit);
    },
  });
  new Gauge({
    name: 'outrig_console_buffered_bytes',
    help: "Guests' console bytes the controller holds for API clients (at most one window per stream)",
    registers: [registry],
    collect() {
      this.set(hub.consoles().bufferedBytes);
    },
  });
  new Gauge({
    name: 'outrig_discovery_nonce_bytes',
    help: 'Estimated memory the discovery nonces hold (bounded by --discovery-nonce-mib)',
    registers: [registry],
    collect() {
      this.set(nonceBytes());
    },
  });
  new Gauge({
    name: 'outrig_memory_domain_mib',
    help: 'Memory pool domains (a tier on a host, or a pooled tier): capacity, committed, ballooned, free, short, in MiB',
    labelNames: ['pool', 'tier', 'domain', 'host', 'measure'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const p of await store.memoryPools.list())
        for (const d of p.status.domains) {
          const l = { pool: p.name, tier: d.tier, domain: d.domain, host: d.hostName ?? '' };
          this.set({ ...l, measure: 'capacity' }, d.capacityMiB);
          this.set({ ...l, measure: 'committed' }, d.committedMiB);
          this.set({ ...l, measure: 'ballooned' }, d.balloonedMiB);
          this.set({ ...l, measure: 'free' }, d.freeMiB);
          this.set({ ...l, measure: 'short' }, d.shortMiB);
        }
    },
  });
  new Gauge({
    name: 'outrig_memory_tenant_mib',
    help: 'Tenants in memory pools: guaranteed, limit, committed, ballooned, held, in MiB',
    labelNames: ['pool', 'tenant', 'measure'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const p of await store.memoryPools.list())
        for (const t of p.status.tenants) {
          const l = { pool: p.name, tenant: t.tenant };
          this.set({ ...l, measure: 'guaranteed' }, t.guaranteedMiB);
          if (t.limitMiB >= 0) this.set({ ...l, measure: 'limit' }, t.limitMiB);
          this.set({ ...l, measure: 'committed' }, t.committedMiB);
          this.set({ ...l, measure: 'ballooned' }, t.balloonedMiB);
          this.set({ ...l, measure: 'held' }, t.heldMiB);
        }
    },
  });
  return {
    registry,
    apiRequests: new Counter({
      name: 'outrig_api_requests_total',
      help: 'API requests by route and status code',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    agentOps: new Counter({ name: 'outrig_agent_operations_total', help: 'Operation answers from agents', labelNames: ['result'], registers: [registry] }),
    agentAnswersDropped: new Counter({
      name: 'outrig_agent_answers_dropped_total',
      help: "Operation answers and progress from a host for an operation not sent to it (another host's, or unknown), dropped",
      labelNames: ['kind', 'reason'],
      registers: [registry],
    }),
    consoleOverruns: new Counter({
      name: 'outrig_console_overruns_total',
      help: 'Console streams closed because an agent sent more than its credit',
      registers: [registry],
    }),
    reconcileErrors: new Counter({ name: 'outrig_reconcile_errors_total', help: 'Reconciler runs that threw', labelNames: ['kind'], registers: [registry] }),
    reconciles: new Counter({ name: 'outrig_reconciles_total', help: 'Reconciler runs', labelNames: ['kind'], registers: [registry] }),
    reconcileSeconds: new Counter({
      name: 'outrig_reconcile_seconds_total',
      help: 'Time spent in reconciler runs (wall clock, from start to end of each run)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    storeQueries: new Counter({ name: 'outrig_store_queries_total', help: 'SQL statements the controller ran against its store', registers: [registry] }),
    discoveryDropped: new Counter({
      name: 'outrig_discovery_dropped_total',
      help: 'Discovery messages dropped (malformed, unsigned, stale, replayed, oversized)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    discoveryAnswers: new Counter({
      name: 'outrig_discovery_answers_total',
      help: 'Discovery acknowledgements and declines sent',
      labelNames: ['kind'],
      registers: [registry],
    }),
    enrollments: new Counter({ name: 'outrig_enrollments_total', help: 'Enrollment requests by result', labelNames: ['result'], registers: [registry] }),
    connectionsClosed: new Counter({
      name: 'outrig_connections_closed_total',
      help: 'Connections the controller closed on a limit: limit-total, limit-address, handshake-timeout, idle-timeout, hello-timeout',
      labelNames: ['reason'],
      registers: [registry],
    }),
    instanceStart: new Histogram({
      name: 'outrig_instance_start_seconds',
      help: 'From sending a start operation to the instance running',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
  };
}
