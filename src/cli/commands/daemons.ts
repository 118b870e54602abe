/** `outrig controller` and `outrig agent`: the long-running processes. */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { apiUrl, dataRoot, DEFAULT_API_HOST, DEFAULT_API_PORT } from '../../common/paths.ts';
import { DEFAULT_CONNECTION_LIMITS } from '../../api/index.ts';
import { guardProcess } from '../../common/crash-guard.ts';
import { createLogger } from '../../common/log.ts';
import { defaultLogFormat, type LogFormat } from '../../common/log-pretty.ts';
import { untilSignal } from '../signals.ts';
import { CliError } from '../errors.ts';
import { collect, parseDuration, parseIntIn, parseIntStrict, parseListen, parseNumberIn } from '../parse.ts';
import { parseSize } from './disk.ts';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { printJson } from '../output.ts';
import type { JoinMode } from '../../agent/index.ts';
import type { AllocationPolicy } from '../../controller/index.ts';

/** How a daemon's log lines look: for people on a terminal, JSON for files and log collectors. */
function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log lines: pretty or json (default: pretty on a terminal, json otherwise)').choices(['pretty', 'json']);
}

function logFormatOf(o: { logFormat?: LogFormat }): LogFormat {
  return o.logFormat ?? defaultLogFormat();
}

/** Disk-space policy of placement and of the HostDiskPressure condition (controller/disk-space.ts, disk-pressure.ts). */
export interface DiskPolicyFlags {
  diskOvercommit?: number;
  diskPressureFree?: number;
  diskPressureMinFree?: number;
}

export const diskPolicyOptions = {
  overcommit: () =>
    new Option(
      '--disk-overcommit <ratio>',
      "what thin volumes may promise, as a multiple of a host's free disk space: 1 never promises more than the disk holds; above 1 allows it and marks such volumes Overcommitted (default 1)",
    ).argParser(parseNumberIn('--disk-overcommit', 0.1, 100)),
  pressureFree: () =>
    new Option(
      '--disk-pressure-free <percent>',
      'HostDiskPressure turns True when a host has less than this percentage of its disk free (default 10)',
    ).argParser(parseNumberIn('--disk-pressure-free', 0, 90)),
  pressureMinFree: () =>
    new Option('--disk-pressure-min-free <size>', '... or less than this free, whichever is more (default 2G; 0 for none)').argParser((v: string) =>
      v.trim() === '0' ? 0 : parseSize(v),
    ),
};

export function diskPolicyOf(o: DiskPolicyFlags): Partial<AllocationPolicy> {
  return {
    ...(o.diskOvercommit !== undefined && { diskOvercommit: o.diskOvercommit }),
    ...(o.diskPressureFree !== undefined && { diskPressureFreeRatio: o.diskPressureFree / 100 }),
    ...(o.diskPressureMinFree !== undefined && { diskPressureMinFreeBytes: o.diskPressureMinFree }),
  };
}

/** The token once came as an argument, where every user of the machine reads it in /proc/PID/cmdline. */
function refuseTokenArgument(): never {
  throw new CliError(
    '--bootstrap-token is no longer accepted: a token on the command line is visible to every user of the machine (/proc/PID/cmdline). ' +
      'Put it in a file only the agent can read and pass --bootstrap-token-file FILE, or set OUTRIG_BOOTSTRAP_TOKEN in its environment',
    2,
  );
}

/** The bootstrap token from --bootstrap-token-file or $OUTRIG_BOOTSTRAP_TOKEN, if any. */
export async function readBootstrapToken(file: string | undefined, env = process.env): Promise<string | undefined> {
  if (!file) return env.OUTRIG_BOOTSTRAP_TOKEN?.trim() || undefined;
  const token = await readFile(file, 'utf8')
    .then((t) => t.trim())
    .catch((e: NodeJS.ErrnoException) => {
      throw new CliError(`cannot read --bootstrap-token-file ${file}: ${e.code ?? e.message}`, 2);
    });
  if (!token) throw new CliError(`--bootstrap-token-file ${file} is empty`, 2);
  if ((await stat(file)).mode & 0o077)
    process.stderr.write(`warning: ${file} can be read by other users; a bootstrap token should be readable by the agent only (chmod 600)\n`);
  return token;
}

/** What an operator registers in a keys rule before the host enrolls. */
async function printIdentity(dataDir: string, json: boolean): Promise<void> {
  const [{ loadHostId, CredentialStore }, { keyFingerprint, publicKeyB64 }] = await Promise.all([import('../../agent/index.ts'), import('../../pki/index.ts')]);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const hostId = await loadHostId(join(dataDir, 'host-id'));
  const fingerprint = keyFingerprint(publicKeyB64((await new CredentialStore(dataDir).keys()).publicKey));
  if (json) return printJson({ hostId, keyFingerprint: fingerprint });
  process.stdout.write(`host id:          ${hostId}\nkey fingerprint:  ${fingerprint}\n`);
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
    .addOption(
      new Option('--discovery-rate <n>', 'discovery messages a second answered per source address').default(50).argParser(parseIntStrict('--discovery-rate')),
    )
    .addOption(
      new Option('--discovery-nonce-mib <MiB>', 'memory the enrollment nonces of discovery may hold; beyond it the oldest are forgotten')
        .default(16)
        .argParser(parseIntIn('--discovery-nonce-mib', 1, 4096)),
    )
    .option('--answer-declines', "tell hosts why their policy is declined (also tells any sender about the cluster; the controller's log always says why)")
    .option('--advertise-url <url>', 'API URL told to discovering hosts (default: https on the listen address)')
    .addOption(
      new Option('--heartbeat-ms <ms>', 'the longest an agent goes without reporting; changes are reported at once, and hosts checked every min(this, 2 s)')
        .default(10_000)
        .argParser(parseIntStrict('--heartbeat-ms')),
    )
    .addOption(
      new Option('--lost-after-ms <ms>', 'a host is lost after this long without heartbeats (default 5 heartbeats)').argParser(
        parseIntStrict('--lost-after-ms'),
      ),
    )
    .addOption(
      new Option('--max-connections <n>', 'connections the API port holds at once, from everyone')
        .default(DEFAULT_CONNECTION_LIMITS.maxConnections)
        .argParser(parseIntIn('--max-connections', 1, 1_000_000)),
    )
    .addOption(
      new Option('--max-connections-per-address <n>', 'connections the API port holds at once from one source address')
        .default(DEFAULT_CONNECTION_LIMITS.maxConnectionsPerAddress)
        .argParser(parseIntIn('--max-connections-per-address', 1, 1_000_000)),
    )
    .addOption(
      new Option('--tls-handshake-timeout-ms <ms>', 'a connection must finish its TLS handshake within this')
        .default(DEFAULT_CONNECTION_LIMITS.handshakeTimeoutMs)
        .argParser(parseIntIn('--tls-handshake-timeout-ms', 100, 600_000)),
    )
    .addOption(
      new Option(
        '--idle-timeout-ms <ms>',
        "a connection without a request this long is closed (after the handshake, and between keep-alive requests; behind a load balancer, set it above the balancer's)",
      )
        .default(DEFAULT_CONNECTION_LIMITS.idleTimeoutMs)
        .argParser(parseIntIn('--idle-timeout-ms', 100, 3_600_000)),
    )
    .addOption(
      new Option('--hello-timeout-ms <ms>', "an agent stream is closed if the agent's hello does not arrive within this")
        .default(10_000)
        .argParser(parseIntIn('--hello-timeout-ms', 100, 600_000)),
    )
    .option('--backup-repository <dir>', 'where backups go unless they name a repository: a path every host sees (default: <data>/backups)')
    .addOption(
      new Option('--max-pending-hosts <n>', 'hosts that may wait for approval at once; more requests get HTTP 429')
        .default(200)
        .argParser(parseIntStrict('--max-pending-hosts')),
    )
    .addOption(logFormatOption())
    .addOption(
      new Option('--pending-host-ttl <duration>', 'a request for approval is forgotten after this long (e.g. 30m, 1h)')
        .default(3_600_000, '1h')
        .argParser(parseDuration),
    )
    .addOption(diskPolicyOptions.overcommit())
    .addOption(diskPolicyOptions.pressureFree())
    .addOption(diskPolicyOptions.pressureMinFree())
    .action(
      async (
        o: {
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
          discoveryNonceMib: number;
          answerDeclines?: boolean;
          advertiseUrl?: string;
          heartbeatMs: number;
          lostAfterMs?: number;
          maxConnections: number;
          maxConnectionsPerAddress: number;
          tlsHandshakeTimeoutMs: number;
          idleTimeoutMs: number;
          helloTimeoutMs: number;
          backupRepository?: string;
          maxPendingHosts: number;
          pendingHostTtl: number;
          logFormat?: LogFormat;
        } & DiskPolicyFlags,
      ) => {
        if (o.maxPendingHosts < 1) throw new CliError('--max-pending-hosts must be at least 1', 2);
        const { host, port } = parseListen(o.listen, DEFAULT_API_HOST);
        if (o.advertiseUrl && !/^https:\/\/[^/]+/.test(o.advertiseUrl))
          throw new CliError(`--advertise-url must be an https:// URL, got '${o.advertiseUrl}'`, 2);
        const { startController, DEFAULT_FEATURES } = await import('../../server/index.ts');
        const log = createLogger('controller', { format: logFormatOf(o) });
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
            ? {
                port: o.discoveryPort,
                group: o.discoveryGroup,
                address: o.discoveryAddress,
                ratePerSource: o.discoveryRate,
                answerDeclines: !!o.answerDeclines,
              }
            : undefined,
          advertiseUrl: o.advertiseUrl,
          nonceMemoryBytes: o.discoveryNonceMib * 1024 * 1024,
          connections: {
            maxConnections: o.maxConnections,
            maxConnectionsPerAddress: o.maxConnectionsPerAddress,
            handshakeTimeoutMs: o.tlsHandshakeTimeoutMs,
            idleTimeoutMs: o.idleTimeoutMs,
            helloTimeoutMs: o.helloTimeoutMs,
          },
          backupRepository: o.backupRepository ? resolve(o.backupRepository) : undefined,
          pendingHosts: { max: o.maxPendingHosts, ttlMs: o.pendingHostTtl },
          allocation: diskPolicyOf(o),
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
    .option('--ca-file <file>', 'the cluster CA certificate (default: $OUTRIG_DATA/ca.crt if present)')
    .option('--ca-fingerprint <sha256>', 'pin the cluster CA by its SHA-256 fingerprint')
    .option('--bootstrap-token-file <file>', 'read the enrollment token from this file, readable only by the agent (or set $OUTRIG_BOOTSTRAP_TOKEN)')
    .addOption(new Option('--bootstrap-token <token>').hideHelp().argParser(refuseTokenArgument))
    .option('--print-identity', "print this host's id and key fingerprint (making the key if there is none yet) and exit: what a keys rule registers")
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
    .addOption(
      new Option('--enroll-retry-max-ms <ms>', 'longest wait between enrollment attempts (a failed one starts over from discovery)')
        .default(300_000)
        .argParser(parseIntIn('--enroll-retry-max-ms', 1000, 86_400_000)),
    )
    .option('--name <name>', 'host name to register as (default: the hostname)')
    .option('--data <dir>', 'agent data directory (default: $OUTRIG_DATA/agent)')
    .addOption(
      new Option('--network-backend <backend>', 'how networks are made on this host (auto: probe the kernel, vxlan first)')
        .choices(['auto', 'vxlan', 'vlan'])
        .default('auto'),
    )
    .option(
      '--dedicated-port <ifname>',
      "the NIC facing an 802.1X switch port: a dedicated cluster's networks go through it, authenticated with the host's principal certificate",
    )
    .option('--underlay <address>', "this host's address VXLAN runs over (default: the address of the default route's interface)")
    .addOption(
      new Option('--stop-timeout <seconds>', 'how long a stop waits for the guest before forcing it').default(30).argParser(parseIntStrict('--stop-timeout')),
    )
    .addOption(new Option('--accel <accel>', 'force an accelerator instead of probing').choices(['kvm', 'tcg']))
    .option(
      '--forward-address <addr>',
      "where guests' forwarded ports listen: 127.0.0.1 reaches them from this host only; this host's LAN address reaches them from elsewhere",
      '127.0.0.1',
    )
    .addOption(logFormatOption())
    .addOption(
      new Option('--serial-log-max <MiB>', "rotate a VM's serial log past this size; one previous file is kept")
        .default(8)
        .argParser(parseIntStrict('--serial-log-max')),
    )
    .action(
      async (
        o: {
          discover?: boolean;
          controller?: string;
          caFile?: string;
          caFingerprint?: string;
          bootstrapTokenFile?: string;
          printIdentity?: boolean;
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
          enrollRetryMaxMs: number;
          name?: string;
          data?: string;
          stopTimeout: number;
          accel?: 'kvm' | 'tcg';
          serialLogMax: number;
          networkBackend: 'auto' | 'vxlan' | 'vlan';
          underlay?: string;
          dedicatedPort?: string;
          forwardAddress: string;
          logFormat?: LogFormat;
        },
        cmd: Command,
      ) => {
        const dataDir = o.data ?? join(dataRoot(), 'agent');
        if (o.printIdentity) return printIdentity(dataDir, !!cmd.optsWithGlobals<{ json?: boolean }>().json);
        const bootstrapToken = await readBootstrapToken(o.bootstrapTokenFile);
        const policy = {
          cluster: o.requireCluster,
          clusterLabels: Object.keys(o.requireLabel).length ? o.requireLabel : undefined,
          features: o.requireFeature.length ? o.requireFeature : undefined,
          minControllerVersion: o.minControllerVersion,
          dedicatedTo: o.dedicatedTenant ? { tenant: o.dedicatedTenant } : undefined,
        };
        if (!o.broadcast && !o.target.length) throw new CliError('--no-broadcast needs at least one --target', 2);
        if (o.serialLogMax < 1) throw new CliError('--serial-log-max must be at least 1 (MiB)', 2);
        if (!isIP(o.forwardAddress))
          throw new CliError(`--forward-address must be an IP address of this host (127.0.0.1, its LAN address, or 0.0.0.0), got '${o.forwardAddress}'`, 2);
        const localCa = join(dataRoot(), 'ca.crt');
        const caPem = o.caFile ? await readFile(o.caFile, 'utf8') : !o.caFingerprint && existsSync(localCa) ? await readFile(localCa, 'utf8') : undefined;
        const join_: JoinMode = o.discover
          ? {
              kind: 'discover',
              policy,
              labels: o.label,
              port: o.discoveryPort,
              group: o.discoveryGroup,
              targets: o.target,
              onlyTargets: !o.broadcast,
              pinnedCaFingerprint: o.caFingerprint,
            }
          : { kind: 'direct', controllerUrl: (o.controller ?? apiUrl()).replace(/\/+$/, ''), caPem, caFingerprint: o.caFingerprint, policy, labels: o.label };
        const { startAgent } = await import('../../agent/index.ts');
        const log = createLogger('agent', { format: logFormatOf(o) });
        guardProcess(log);
        const a = await startAgent({
          log,
          dataDir,
          join: join_,
          bootstrapToken,
          enrollRetryMaxMs: o.enrollRetryMaxMs,
          name: o.name,
          stopTimeoutMs: o.stopTimeout * 1000,
          accel: o.accel ?? (process.env.OUTRIG_ACCEL as 'kvm' | 'tcg' | undefined),
          network: { backend: o.networkBackend, underlay: o.underlay, dedicatedPort: o.dedicatedPort },
          serialLogMaxBytes: o.serialLogMax * 1024 * 1024,
          forwardAddress: o.forwardAddress,
        });
        process.stderr.write(`outrig agent ${a.name} (${a.hostId}) joined ${a.controllerUrl}; accelerator ${a.kvm.usable ? 'kvm' : 'tcg'} (${a.kvm.reason})\n`);
        await untilSignal(() => a.close());
      },
    );
}
