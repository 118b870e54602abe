/** `outrig controller` and `outrig agent`: the long-running processes. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { apiUrl, dataRoot, DEFAULT_API_HOST, DEFAULT_API_PORT } from '../../common/paths.ts';
import { guardProcess } from '../../common/crash-guard.ts';
import { createLogger } from '../../common/log.ts';
import { CliError } from '../errors.ts';
import { collect, parseIntStrict, parseListen } from '../parse.ts';
import { readFile } from 'node:fs/promises';
import type { JoinMode } from '../../agent/enroll.ts';

/** Runs until SIGINT/SIGTERM, then calls `stop` once. */
export function untilSignal(stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const on = (sig: string) => {
      if (stopping) {
        process.stderr.write(`\n${sig} again: exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      void stop().finally(resolve);
    };
    process.on('SIGINT', () => on('SIGINT'));
    process.on('SIGTERM', () => on('SIGTERM'));
  });
}

function collectKv(v: string, prev: Record<string, string>): Record<string, string> {
  const i = v.indexOf('=');
  if (i <= 0) throw new CliError(`invalid key=value '${v}'`, 2);
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
}

export function daemonCommands(program: Command): void {
  program
    .command('controller')
    .description('run the controller: API (TLS), reconcilers, the agent stream and the discovery responder')
    .option('--listen <host:port>', 'API address', `${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`)
    .option('--data <dir>', 'controller data directory (default: $OUTRIG_DATA/controller)')
    .option('--cluster <name>', 'cluster name offered to discovering hosts', 'outrig')
    .option('--cluster-label <key=value>', 'cluster label offered to discovering hosts (repeatable)', collectKv, {})
    .option('--feature <feature>', 'feature offered to discovering hosts (repeatable; default mtls, kvm, tcg, volumes)', collect, [])
    .option('--no-discovery', 'do not answer discovery datagrams')
    .addOption(new Option('--discovery-port <port>', 'UDP port of the discovery responder').default(7441).argParser(parseIntStrict('--discovery-port')))
    .option('--discovery-group <addr>', 'multicast group of the discovery responder', '239.255.74.41')
    .option('--discovery-address <addr>', 'bind the discovery responder to one address: unicast only, no multicast or broadcast')
    .addOption(new Option('--discovery-rate <n>', 'discovery messages a second answered per source address').default(50).argParser(parseIntStrict('--discovery-rate')))
    .option('--silent-declines', 'do not tell hosts why their policy is declined')
    .option('--advertise-url <url>', 'API URL told to discovering hosts (default: https on the listen address)')
    .addOption(new Option('--heartbeat-ms <ms>', 'agent heartbeat period').default(2000).argParser(parseIntStrict('--heartbeat-ms')))
    .addOption(new Option('--lost-after-ms <ms>', 'a host is lost after this long without heartbeats (default 5 heartbeats)').argParser(parseIntStrict('--lost-after-ms')))
    .option('--backup-repository <dir>', 'where backups go unless they name a repository: a path every host sees (default: <data>/backups)')
    .action(
      async (o: {
        listen: string;
        data?: string;
        cluster: string;
        clusterLabel: Record<string, string>;
        feature: string[];
        discovery: boolean;
        discoveryPort: number;
        discoveryGroup: string;
        discoveryAddress?: string;
        discoveryRate: number;
        silentDeclines?: boolean;
        advertiseUrl?: string;
        heartbeatMs: number;
        lostAfterMs?: number;
        backupRepository?: string;
      }) => {
        const { host, port } = parseListen(o.listen, DEFAULT_API_HOST);
        if (o.advertiseUrl && !/^https:\/\/[^/]+/.test(o.advertiseUrl)) throw new CliError(`--advertise-url must be an https:// URL, got '${o.advertiseUrl}'`, 2);
        const { startController, DEFAULT_FEATURES } = await import('../../controller/index.ts');
        const log = createLogger('controller');
        guardProcess(log);
        const c = await startController({
          log,
          dataDir: o.data ?? join(dataRoot(), 'controller'),
          clientDir: dataRoot(),
          host,
          port,
          heartbeatMs: o.heartbeatMs,
          lostAfterMs: o.lostAfterMs,
          cluster: { name: o.cluster, labels: o.clusterLabel, features: o.feature.length ? o.feature : DEFAULT_FEATURES },
          discovery: o.discovery
            ? { port: o.discoveryPort, group: o.discoveryGroup, address: o.discoveryAddress, ratePerSource: o.discoveryRate, answerDeclines: !o.silentDeclines }
            : undefined,
          advertiseUrl: o.advertiseUrl,
          backupRepository: o.backupRepository ? resolve(o.backupRepository) : undefined,
        });
        process.stderr.write(
          `outrig controller listening on ${c.url}\n` +
            `CA fingerprint sha256:${c.trust.ca.fingerprint} (CA certificate in ${c.caFile})\n` +
            `admin token in ${c.adminTokenFile}\n` +
            (c.discoveryPort ? `answering discovery on UDP ${c.discoveryPort} (group ${o.discoveryGroup})\n` : ''),
        );
        await untilSignal(() => c.close());
      },
    );

  program
    .command('agent')
    .description('run the host agent: joins a cluster (discovery or a known controller) and runs its instances')
    .option('--discover', 'find a controller by multicast/broadcast discovery')
    .option('--controller <url>', 'join this controller directly (default: $OUTRIG_URL or https://127.0.0.1:7440)')
    .option('--ca-file <file>', "the cluster CA certificate (default: $OUTRIG_DATA/ca.crt if present)")
    .option('--ca-fingerprint <sha256>', 'pin the cluster CA by its SHA-256 fingerprint')
    .option('--bootstrap-token <token>', 'one-time enrollment token (or $OUTRIG_BOOTSTRAP_TOKEN)')
    .option('--require-cluster <name>', 'policy: join only a cluster of this name')
    .option('--require-label <key=value>', 'policy: join only a cluster with this label (repeatable)', collectKv, {})
    .option('--require-feature <feature>', 'policy: join only a controller offering this feature (repeatable)', collect, [])
    .option('--min-controller-version <x.y.z>', 'policy: join only a controller at least this new')
    .option('--dedicated-tenant <tenant>', 'policy: this host is dedicated to a tenant the cluster must have')
    .option('--label <key=value>', 'label of this host (enrollment rules can match it; repeatable)', collectKv, {})
    .option('--target <host[:port]>', 'also send discovery datagrams to this address (repeatable)', collect, [])
    .option('--no-broadcast', 'send discovery datagrams only to the --target addresses (no multicast or broadcast)')
    .addOption(new Option('--discovery-port <port>', 'UDP port of discovery responders').default(7441).argParser(parseIntStrict('--discovery-port')))
    .option('--discovery-group <addr>', 'multicast group of discovery responders', '239.255.74.41')
    .option('--name <name>', 'host name to register as (default: the hostname)')
    .option('--data <dir>', 'agent data directory (default: $OUTRIG_DATA/agent)')
    .addOption(new Option('--network-backend <backend>', 'how networks are made on this host (auto: probe the kernel, vxlan first)').choices(['auto', 'vxlan', 'vlan']).default('auto'))
    .option('--dedicated-port <ifname>', "the NIC facing an 802.1X switch port: a dedicated cluster's networks go through it, authenticated with the host's principal certificate")
    .option('--underlay <address>', "this host's address VXLAN runs over (default: the address of the default route's interface)")
    .addOption(new Option('--stop-timeout <seconds>', 'how long a stop waits for the guest before forcing it').default(30).argParser(parseIntStrict('--stop-timeout')))
    .addOption(new Option('--accel <accel>', 'force an accelerator instead of probing').choices(['kvm', 'tcg']))
    .addOption(new Option('--serial-log-max <MiB>', "rotate a VM's serial log past this size; one previous file is kept").default(8).argParser(parseIntStrict('--serial-log-max')))
    .action(
      async (o: {
        discover?: boolean;
        controller?: string;
        caFile?: string;
        caFingerprint?: string;
        bootstrapToken?: string;
        requireCluster?: string;
        requireLabel: Record<string, string>;
        requireFeature: string[];
        minControllerVersion?: string;
        dedicatedTenant?: string;
        label: Record<string, string>;
        target: string[];
        broadcast: boolean;
        discoveryPort: number;
        discoveryGroup: string;
        name?: string;
        data?: string;
        stopTimeout: number;
        accel?: 'kvm' | 'tcg';
        serialLogMax: number;
        networkBackend: 'auto' | 'vxlan' | 'vlan';
        underlay?: string;
        dedicatedPort?: string;
      }) => {
        const policy = {
          cluster: o.requireCluster,
          clusterLabels: Object.keys(o.requireLabel).length ? o.requireLabel : undefined,
          features: o.requireFeature.length ? o.requireFeature : undefined,
          minControllerVersion: o.minControllerVersion,
          dedicatedTo: o.dedicatedTenant ? { tenant: o.dedicatedTenant } : undefined,
        };
        if (!o.broadcast && !o.target.length) throw new CliError('--no-broadcast needs at least one --target', 2);
        if (o.serialLogMax < 1) throw new CliError('--serial-log-max must be at least 1 (MiB)', 2);
        const localCa = join(dataRoot(), 'ca.crt');
        const caPem = o.caFile ? await readFile(o.caFile, 'utf8') : !o.caFingerprint && existsSync(localCa) ? await readFile(localCa, 'utf8') : undefined;
        const join_: JoinMode = o.discover
          ? { kind: 'discover', policy, labels: o.label, port: o.discoveryPort, group: o.discoveryGroup, targets: o.target, onlyTargets: !o.broadcast, pinnedCaFingerprint: o.caFingerprint }
          : { kind: 'direct', controllerUrl: (o.controller ?? apiUrl()).replace(/\/+$/, ''), caPem, caFingerprint: o.caFingerprint, policy, labels: o.label };
        const { startAgent } = await import('../../agent/index.ts');
        const log = createLogger('agent');
        guardProcess(log);
        const a = await startAgent({
          log,
          dataDir: o.data ?? join(dataRoot(), 'agent'),
          join: join_,
          bootstrapToken: o.bootstrapToken ?? process.env.OUTRIG_BOOTSTRAP_TOKEN,
          name: o.name,
          stopTimeoutMs: o.stopTimeout * 1000,
          accel: o.accel ?? (process.env.OUTRIG_ACCEL as 'kvm' | 'tcg' | undefined),
          network: { backend: o.networkBackend, underlay: o.underlay, dedicatedPort: o.dedicatedPort },
          serialLogMaxBytes: o.serialLogMax * 1024 * 1024,
        });
        process.stderr.write(`outrig agent ${a.name} (${a.hostId}) joined ${a.controllerUrl}; accelerator ${a.kvm.usable ? 'kvm' : 'tcg'} (${a.kvm.reason})\n`);
        await untilSignal(() => a.close());
      },
    );
}
