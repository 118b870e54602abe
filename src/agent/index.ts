/**
 * The host agent: probes the machine, adopts the VMs an earlier agent left running, dials the
 * controller and carries out its operations. Stopping the agent never stops a VM.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { createLogger } from '../common/log.ts';
import { ensurePrivateDir } from '../common/secrets.ts';
import { VERSION } from '../common/version.ts';
import { QemuDriver, probeKvm, type Accel, type KvmProbeResult } from '../hypervisor/index.ts';
import { PROTOCOL_VERSION, type AgentMessage, type AgentOp, type BackupRepoRef, type ControllerMessage, type DiskImageRef, type StorageReport, type VolumeReport } from '../model/agent-protocol.ts';
import type { VolumeSource } from '../disk/diskd.ts';
import { Storage } from './storage.ts';
import { VolumeBackups } from './backups.ts';
import { X509Certificate } from 'node:crypto';
import { httpsRequest } from '../common/https.ts';
import { createCsr } from '../pki/csr.ts';
import { generateKeyPair } from '../pki/keys.ts';
import { CredentialStore, lifetimeLeft, type Credentials } from './credentials.ts';
import { enrollWithRetry, type JoinMode } from './enroll.ts';
import { ConsoleStream } from './console.ts';
import { loadHostId } from './host-identity.ts';
import { ImageCache } from './image-cache.ts';
import { readInventory } from './inventory.ts';
import { OpJournal } from './op-journal.ts';
import { ControllerConnection } from './connection.ts';
import { VmManager } from './vm-manager.ts';
import { HostNetwork, type BackendChoice } from './networks.ts';
import { Supplicant } from './supplicant.ts';
import { dhcpTag } from '../network/index.ts';

export interface AgentConfig {
  dataDir: string;
  /** How to find and join a controller the first time (later starts reuse the stored certificate). */
  join: JoinMode;
  /** A one-time token an enrollment rule admits. */
  bootstrapToken?: string;
  /** Longest wait between enrollment attempts (default 5 minutes). */
  enrollRetryMaxMs?: number;
  name?: string;
  stopTimeoutMs?: number;
  /** Network backend (default: probe, vxlan before vlan) and the underlay address VXLAN runs over (default: found). */
  network?: { backend?: BackendChoice; underlay?: string; dedicatedPort?: string };
  /** Force an accelerator instead of probing (operators: OUTRIG_ACCEL). */
  accel?: Accel;
  /** A VM's serial log is rotated past this size (default: the VM manager's, 8 MiB); one previous file is kept. */
  serialLogMaxBytes?: number;
  /** Where guests' forwarded ports listen (default 127.0.0.1: this host only). */
  forwardAddress?: string;
  log?: Logger;
}

export interface RunningAgent {
  hostId: string;
  controllerUrl: string;
  name: string;
  kvm: KvmProbeResult;
  vms: VmManager;
  storage: Storage;
  /** Disconnects; VMs and diskd keep running unless stopDiskd (then VMs should be stopped first). */
  close(opts?: { stopDiskd?: boolean }): Promise<void>;
}

export async function startAgent(cfg: AgentConfig): Promise<RunningAgent> {
  const log = cfg.log ?? createLogger('agent');
  await ensurePrivateDir(cfg.dataDir);
  const hostId = await loadHostId(join(cfg.dataDir, 'host-id'));
  const name = cfg.name ?? hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63);
  const kvm = await probeKvm({ cacheFile: join(cfg.dataDir, 'kvm-probe.json') });

  const credStore = new CredentialStore(cfg.dataDir);
  // Networks are probed before enrollment: the time between a certificate's issue and its first
  // use stays short (a short-lived certificate must not expire during the probe).
  const supplicant = new Supplicant({ dataDir: cfg.dataDir, port: cfg.network?.dedicatedPort, identity: name, keyPath: credStore.keyPath, caPath: credStore.caPath, log });
  const network = new HostNetwork({ backend: cfg.network?.backend ?? 'auto', underlay: cfg.network?.underlay, log, supplicant, dhcpTag: dhcpTag(cfg.dataDir), stateDir: join(cfg.dataDir, 'network') });
  await network.init();

  // Trust first: a stored certificate, or enrollment (discovery, CSR, perhaps an operator's approval).
  let keys = await credStore.keys();
  let creds = await credStore.load();
  if (!creds) {
    creds = await enrollWithRetry({ identity: { hostId, name, keys }, mode: cfg.join, bootstrapToken: cfg.bootstrapToken, log, maxBackoffMs: cfg.enrollRetryMaxMs ?? 300_000 });
    await credStore.save(creds);
  }
  await supplicant.resume();
  const tls = () => ({ ca: creds!.caPem, cert: creds!.certPem, key: keys.privateKey });
  const accel: Accel = cfg.accel ?? (kvm.usable ? 'kvm' : 'tcg');
  log.info({ kvm: kvm.usable, reason: kvm.reason, accel }, 'accelerator chosen');

  const journal = new OpJournal(join(cfg.dataDir, 'operations.json'), undefined, (e) => log.warn({ err: e.message }, 'could not write the operation journal'));
  await journal.load();
  let conn: ControllerConnection | undefined;
  let reportQueued = false;
  const sendReport = () => {
    // Coalesce bursts of changes into one report on the next tick.
    if (reportQueued) return;
    reportQueued = true;
    setImmediate(() => {
      reportQueued = false;
      conn?.send({ type: 'report', vms: vms.report(), volumes, storage: space });
    });
  };
  // The storage manager: this host's volumes live in diskd, a process of their own.
  const storage = new Storage(join(cfg.dataDir, 'diskd'), log);
  await storage.ensureRunning();
  let volumes: VolumeReport[] = [];
  /**
   * The disk space, read with the volumes: reported on every heartbeat, so the controller sees free
   * space move within a heartbeat (it records it when it moves enough; see controller/disk-space.ts).
   */
  let space: StorageReport | undefined;
  // Volumes being filled from a backup: not reported until they hold the whole disk (their space is
  // in the storage figures already: the controller counts them twice meanwhile, the safe way).
  const backups = new VolumeBackups(storage, join(cfg.dataDir, 'backup-work'));
  const filling = new Set<string>(backups.recover());
  const refreshVolumes = async () => {
    const now = await storage.volumesAndSpace();
    volumes = now.volumes.filter((v) => !filling.has(v.name)).map((v) => ({ id: v.name, sizeBytes: v.sizeBytes, usedBytes: v.usedBytes, snapshots: v.snapshots }));
    space = now.space;
    sendReport();
  };
  await refreshVolumes();
  const images = new ImageCache(join(cfg.dataDir, 'images'), () => creds!.controllerUrl, tls);
  const vms = new VmManager({
    driver: new QemuDriver({ vmsDir: join(cfg.dataDir, 'vms') }),
    images,
    accel,
    stopTimeoutMs: cfg.stopTimeoutMs ?? 30_000,
    log,
    onChange: sendReport,
    nbdSocket: storage.nbdSocket,
    networks: network,
    serialLogMaxBytes: cfg.serialLogMaxBytes,
    forwardAddress: cfg.forwardAddress,
  });
  await vms.adoptAll();

  /** A disk image, fetched once per host and handed to diskd, which clones volumes from it. */
  const ensureDiskImage = async (image: DiskImageRef) => {
    if (await storage.hasImage(image.id)) return;
    const staging = join(storage.paths.dir, `incoming-${image.id}.odsk`);
    await images.download(image, 'disk', image.file, staging);
    await storage.registerImage(image.id, staging);
  };

  const progressOf = (opId: string) => (progress: Extract<AgentMessage, { type: 'op-progress' }>['progress']) => conn?.send({ type: 'op-progress', opId, progress });

  /**
   * A new volume rebuilt from a backup. A marker file says the volume is not whole yet: a restore
   * cut short by an agent crash is started again from scratch, and on failure the volume is deleted,
   * so nothing half-made stays or is ever reported.
   */
  const restoreVolume = async (op: Extract<AgentOp, { kind: 'volume.ensure' }>, from: { repository: BackupRepoRef; snapshotId: string }) => {
    const marker = backups.restoreMarker(op.volumeId);
    const exists = (await storage.volumes()).some((v) => v.name === op.volumeId);
    if (exists && !existsSync(marker)) return;
    filling.add(op.volumeId);
    try {
      writeFileSync(marker, '');
      if (exists) await storage.deleteVolume(op.volumeId);
      await storage.createVolume(op.volumeId, { sizeBytes: op.sizeBytes, blockSize: op.blockSize });
      await backups.restoreInto(op.volumeId, from.repository, from.snapshotId, progressOf(op.opId)).catch(async (e: Error) => {
        await storage.deleteVolume(op.volumeId).catch((d: Error) => log.warn({ volume: op.volumeId, err: d.message }, 'could not remove the half-restored volume'));
        throw e;
      });
    } finally {
      rmSync(marker, { force: true });
      filling.delete(op.volumeId);
    }
  };

  /** Operations that can be cancelled (backups), while they run. */
  const cancellable = new Map<string, AbortController>();
  const withCancel = async <T>(opId: string, work: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const ac = new AbortController();
    cancellable.set(opId, ac);
    try {
      return await work(ac.signal);
    } finally {
      cancellable.delete(opId);
    }
  };

  const consoles = new Map<string, ConsoleStream>();
  const runOp = async (op: AgentOp): Promise<void | Record<string, unknown>> => {
    switch (op.kind) {
      case 'vm.start':
        return vms.start(op.instanceId, op.vm);
      case 'vm.restart':
        return vms.restart(op.instanceId, op.vm, { force: op.force });
      case 'vm.stop':
        return vms.stop(op.instanceId, { force: op.force });
      case 'vm.delete':
        return vms.delete(op.instanceId);
      case 'vm.attach':
        return vms.attach(op.instanceId, op.volumeId, op.tag);
      case 'vm.detach':
        return vms.detach(op.instanceId, op.volumeId);
      case 'vm.balloon':
        return vms.balloon(op.instanceId, op.targetMiB);
      case 'op.cancel': {
        const target = cancellable.get(op.target);
        if (target) log.info({ op: op.target }, 'operation cancelled');
        target?.abort(new Error('cancelled on request'));
        return { running: !!target };
      }
    }
    try {
      switch (op.kind) {
        case 'volume.ensure': {
          if (op.source && 'backup' in op.source) return await restoreVolume(op, op.source.backup);
          let source: VolumeSource | undefined;
          if (op.source && 'image' in op.source) {
            await ensureDiskImage(op.source.image);
            source = { image: op.source.image.id };
          } else if (op.source) source = { volume: op.source.volumeId, snapshot: op.source.snapshotId };
          await storage.createVolume(op.volumeId, { sizeBytes: op.sizeBytes, blockSize: op.blockSize, source });
          return;
        }
        case 'volume.resize':
          await storage.resize(op.volumeId, op.sizeBytes);
          return;
        case 'volume.delete':
          return await storage.deleteVolume(op.volumeId);
        case 'snapshot.ensure':
          return await storage.createSnapshot(op.volumeId, op.snapshotId);
        case 'snapshot.delete':
          return await storage.deleteSnapshot(op.volumeId, op.snapshotId);
        case 'backup.create':
          return { ...(await withCancel(op.opId, (signal) => backups.backup(op, progressOf(op.opId), signal))) };
        case 'backup.files':
          return { ...(await withCancel(op.opId, (signal) => backups.files(op, progressOf(op.opId), signal))) };
        case 'backup.restore-files':
          return await backups.restoreFiles(op.repository, op.snapshotId, op.target, op.include);
        case 'backup.forget':
          return await backups.forget(op.repository, op.snapshotId);
        case 'backup.restore-system-state':
          return await backups.restoreSystemState(op.volumeId, op.repository, op.snapshotId);
        case 'backup.restore-into-volume':
          return await backups.restoreIntoVolume(op.volumeId, op.repository, op.snapshotId, op.include);
        case 'network.ensure':
          return await network.ensure(op.segment, op.peers, op.macs);
        case 'network.remove':
          return await network.remove(op.segment);
        case 'host.principal':
          return await supplicant.apply(op.certificate);
      }
    } finally {
      await refreshVolumes().catch((e: Error) => log.warn({ err: e.message }, 'could not list volumes'));
    }
  };

  const openConsole = (m: Extract<ControllerMessage, { type: 'console-open' }>) => {
    const path = vms.serialLog(m.instanceId);
    const end = (error?: string) => {
      consoles.get(m.streamId)?.stop();
      consoles.delete(m.streamId);
      conn?.send({ type: 'console-end', streamId: m.streamId, error });
    };
    if (!path) return end(`no VM ${m.instanceId} on this host`);
    if (consoles.has(m.streamId)) return;
    const c = new ConsoleStream({
      path,
      tailBytes: m.tailBytes,
      follow: m.follow,
      credit: m.window,
      send: (chunk) => conn?.sendConsole({ type: 'console-data', streamId: m.streamId, data: chunk.toString('base64') }),
      end,
      canSend: () => conn?.consoleRoom ?? false,
    });
    consoles.set(m.streamId, c);
    c.start().catch((e: Error) => end(e.message));
  };

  const onMessage = (m: ControllerMessage) => {
    switch (m.type) {
      case 'op':
        if (m.op.kind === 'vm.balloon' || m.op.kind === 'op.cancel') {
          // Setting a balloon target is idempotent and frequent, and a cancel must act again on a re-sent run: answered without the journal.
          const opId = m.op.opId;
          void runOp(m.op).then(
            (result) => conn?.send({ type: 'op-result', opId, ok: true, ...(result ? { result } : {}) }),
            (e: Error) => conn?.send({ type: 'op-result', opId, ok: false, error: e.message }),
          );
          break;
        }
        log.info({ op: m.op.opId, kind: m.op.kind }, 'operation');
        void journal.run(m.op.opId, () => runOp(m.op)).then((r) => {
          if (!r.ok) log.warn({ op: m.op.opId, err: r.error }, 'operation failed');
          conn?.send({ type: 'op-result', opId: m.op.opId, ok: r.ok, error: r.error, result: r.result });
        });
        break;
      case 'console-open':
        openConsole(m);
        break;
      case 'console-credit':
        consoles.get(m.streamId)?.grant(m.bytes);
        break;
      case 'console-close':
        consoles.get(m.streamId)?.stop();
        consoles.delete(m.streamId);
        break;
      case 'welcome':
        break;
    }
  };

  let heartbeat: NodeJS.Timeout | undefined;
  conn = new ControllerConnection({
    controllerUrl: creds.controllerUrl,
    tls,
    log,
    hello: async () => ({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      hostId,
      name,
      agentVersion: VERSION,
      inventory: { ...(await readInventory(kvm)), network: network.inventory() },
      vms: vms.report(),
      volumes,
      storage: space,
    }),
    onMessage,
    onWelcome: (ms) => {
      if (heartbeat) clearInterval(heartbeat);
      heartbeat = setInterval(() => {
        void vms
          .sweep()
          .then(() => vms.sampleMemory())
          // diskd gone (a crash)? Start it again: QEMU's NBD clients reconnect and carry on.
          .then(() => refreshVolumes().catch(() => storage.ensureRunning().then(refreshVolumes)))
          .catch((e: Error) => log.warn({ err: e.message }, 'periodic sweep failed'))
          .finally(() => conn?.send({ type: 'report', vms: vms.report(), volumes, storage: space }));
      }, ms);
    },
    onDisconnect: () => {
      for (const t of consoles.values()) t.stop();
      consoles.clear();
    },
    onConsoleRoom: () => {
      for (const c of consoles.values()) c.kick();
    },
  });
  conn.start();

  /**
   * Renews the certificate (with a new key) once a third of its lifetime is left. The controller
   * revokes the old one at once, so the stream, opened with it, is dialled again with the new one.
   */
  const renew = async () => {
    if (lifetimeLeft(creds!.certPem) > 1 / 3) return;
    const next = generateKeyPair();
    const csr = await createCsr(hostId, next);
    const res = await httpsRequest(`${creds!.controllerUrl}/v1/agent/renew`, { method: 'POST', body: JSON.stringify({ csr }), headers: { 'content-type': 'application/json' }, tls: tls() });
    if (res.status !== 200) throw new Error(`renewal refused: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 200)}`);
    const renewed: Credentials = { ...creds!, certPem: res.json<{ certificate: string }>().certificate };
    await credStore.save(renewed, next);
    creds = renewed;
    keys = next;
    log.info({ notAfter: new X509Certificate(renewed.certPem).validTo }, 'certificate renewed');
    conn?.reconnect('certificate renewed');
  };
  const renewTimer = setInterval(() => void renew().catch((e: Error) => log.warn({ err: e.message }, 'certificate renewal failed; will retry')), 3_600_000);
  renewTimer.unref();
  void renew().catch((e: Error) => log.warn({ err: e.message }, 'certificate renewal failed; will retry'));

  return {
    hostId,
    controllerUrl: creds.controllerUrl,
    name,
    kvm,
    vms,
    storage,
    async close(opts = {}) {
      clearInterval(renewTimer);
      for (const t of consoles.values()) t.stop();
      await conn!.close();
      // After the stream is closed: a welcome that arrived while it closed starts no new heartbeat.
      if (heartbeat) clearInterval(heartbeat);
      vms.close();
      // The supplicant keeps the port authenticated across agent restarts, as VMs keep running.
      if (opts.stopDiskd) await storage.stop();
    },
  };
}
