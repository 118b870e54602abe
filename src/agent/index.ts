/**
 * The host agent: probes the machine, adopts the VMs an earlier agent left running, dials the
 * controller and carries out its operations. Stopping the agent never stops a VM.
 *
 * This module composes the parts: identity and enrollment (identity.ts), the services
 * (services.ts), adoption of running VMs (adoption.ts), the operation handlers (ops/) and the
 * stream to the controller (stream.ts).
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { createLogger } from '../common/log.ts';
import { ensurePrivateDir } from '../common/secrets.ts';
import { VERSION } from '../common/version.ts';
import { probeKvm, type Accel, type KvmProbeResult } from '../hypervisor/index.ts';
import { PROTOCOL_VERSION, type AgentMessage } from '../model/agent-protocol.ts';
import { adoptVms } from './adoption.ts';
import { Consoles } from './consoles.ts';
import type { JoinMode } from './enroll.ts';
import { HostTrust, hostIdentity } from './identity.ts';
import { ImageCache } from './image-cache.ts';
import { readInventory } from './inventory.ts';
import { OpJournal } from './op-journal.ts';
import { OpDispatcher } from './ops/dispatch.ts';
import { Cancellations } from './ops/index.ts';
import { StorageServices, startNetworking, type NetworkConfig } from './services.ts';
import type { Storage } from './storage.ts';
import { AgentStream } from './stream.ts';
import type { VmManager } from './vm-manager.ts';

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
  network?: NetworkConfig;
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
  const { hostId, name } = await hostIdentity(cfg.dataDir, cfg.name);
  const kvm = await probeKvm({ cacheFile: join(cfg.dataDir, 'kvm-probe.json') });

  const trust = new HostTrust(cfg.dataDir, { hostId, name }, log);
  // Networks are probed before enrollment: the time between a certificate's issue and its first
  // use stays short (a short-lived certificate must not expire during the probe).
  const { supplicant, network } = await startNetworking({
    dataDir: cfg.dataDir,
    name,
    network: cfg.network,
    keyPath: trust.keyPath,
    caPath: trust.caPath,
    log,
  });
  // Trust first: a stored certificate, or enrollment (discovery, CSR, perhaps an operator's approval).
  await trust.establish({ mode: cfg.join, bootstrapToken: cfg.bootstrapToken, maxBackoffMs: cfg.enrollRetryMaxMs ?? 300_000 });
  await supplicant.resume();
  const accel: Accel = cfg.accel ?? (kvm.usable ? 'kvm' : 'tcg');
  log.info({ kvm: kvm.usable, reason: kvm.reason, accel }, 'accelerator chosen');

  const journal = new OpJournal(join(cfg.dataDir, 'operations.json'), undefined, (e) => log.warn({ err: e.message }, 'could not write the operation journal'));
  await journal.load();
  // Assigned once everything it reports on exists: until then there is nobody to send to.
  let stream: AgentStream | undefined;
  const report = (): Extract<AgentMessage, { type: 'report' }> => ({ type: 'report', vms: vms.report(), ...disks.report() });
  let reportQueued = false;
  const sendReport = () => {
    // Coalesce bursts of changes into one report on the next tick.
    if (reportQueued) return;
    reportQueued = true;
    setImmediate(() => {
      reportQueued = false;
      stream?.sendReport(report());
    });
  };
  const disks = await StorageServices.start(cfg.dataDir, log, sendReport);
  const images = new ImageCache(join(cfg.dataDir, 'images'), () => trust.controllerUrl, trust.tls);
  const vms = await adoptVms(cfg.dataDir, {
    images,
    accel,
    stopTimeoutMs: cfg.stopTimeoutMs ?? 30_000,
    log,
    onChange: sendReport,
    nbdSocket: disks.storage.nbdSocket,
    networks: network,
    serialLogMaxBytes: cfg.serialLogMaxBytes,
    forwardAddress: cfg.forwardAddress,
  });

  const ops = new OpDispatcher({
    journal,
    log,
    refreshVolumes: () => disks.refresh(),
    ctx: {
      vms,
      storage: disks.storage,
      backups: disks.backups,
      network,
      supplicant,
      images,
      filling: disks.filling,
      cancellations: new Cancellations(),
      progress: (opId) => (progress) => stream?.send({ type: 'op-progress', opId, progress }),
      log,
    },
  });
  const consoles = new Consoles({ serialLog: (id) => vms.serialLog(id), link: () => stream });
  const s = new AgentStream({
    controllerUrl: trust.controllerUrl,
    tls: trust.tls,
    log,
    hello: async () => ({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      hostId,
      name,
      agentVersion: VERSION,
      inventory: { ...(await readInventory(kvm)), network: network.inventory() },
      vms: vms.report(),
      ...disks.report(),
    }),
    answer: (op) => ops.answer(op),
    consoles,
    sweep: async () => {
      await vms.sweep();
      await vms.sampleMemory();
      await disks.refreshOrRestart();
    },
    report,
  });
  stream = s;
  s.start();
  // The controller revokes the certificate the stream was opened with at once: dial again with the new one.
  trust.startRenewal(() => s.reconnect('certificate renewed'));

  return {
    hostId,
    controllerUrl: trust.controllerUrl,
    name,
    kvm,
    vms,
    storage: disks.storage,
    async close(opts = {}) {
      trust.stop();
      consoles.closeAll();
      await s.close();
      vms.close();
      // The supplicant keeps the port authenticated across agent restarts, as VMs keep running.
      if (opts.stopDiskd) await disks.storage.stop();
    },
  };
}
export { loadHostId } from './host-identity.ts';
export { CredentialStore } from './credentials.ts';
export type { JoinMode } from './enroll.ts';
