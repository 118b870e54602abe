/**
 * Messages on the agent stream (WebSocket, JSON text frames). The agent dials the controller;
 * the controller never dials the agent. Every operation carries an id, and the agent answers a
 * repeated id with the first answer instead of doing the work again.
 */
import { Type, type Static } from 'typebox';
import { Inventory } from './host.ts';
import { PortForward, StopProgress } from './instance.ts';
import { BackupProgress } from './backup.ts';

/** 2: console streams are flow-controlled (console-open's window, console-credit). */
export const PROTOCOL_VERSION = 2;
export const AGENT_STREAM_PATH = '/v1/agent/stream';
/** Raw bytes in one console-data message at most. */
export const CONSOLE_CHUNK_MAX = 32 * 1024;

export const VmState = Type.Union([Type.Literal('starting'), Type.Literal('running'), Type.Literal('stopping'), Type.Literal('stopped')]);
export type VmState = Static<typeof VmState>;

/** How a guest NIC reaches its network: `tap` names the tap device, or `pciAddress` the virtual function (mode vf). */
const NicAttachment = Type.Object({
  tap: Type.Optional(Type.String()),
  pciAddress: Type.Optional(Type.String()),
  mac: Type.String(),
  mode: Type.String(),
  reason: Type.String(),
});
type NicAttachment = Static<typeof NicAttachment>;

export const DiskRelease = Type.Object({ volumeId: Type.String(), tag: Type.Optional(Type.String()) });
export type DiskRelease = Static<typeof DiskRelease>;

export const VmReport = Type.Object({
  instanceId: Type.String(),
  state: VmState,
  pid: Type.Optional(Type.Integer()),
  accel: Type.String(),
  forwards: Type.Array(PortForward),
  /** The instance generation and restart count the running VM was started for. */
  generation: Type.Integer(),
  restartSeq: Type.Integer(),
  bootedAt: Type.Optional(Type.String()),
  readyAt: Type.Optional(Type.String()),
  lastExit: Type.Optional(Type.Object({ at: Type.String(), reason: Type.String() })),
  /** Volumes plugged into the VM (ids). */
  disks: Type.Array(Type.String()),
  /**
   * Volumes the guest unplugged itself since the VM started (it powered off their PCIe slot), with the
   * tag of the request that had plugged them in; dropped again when the volume is attached anew.
   */
  released: Type.Optional(Type.Array(DiskRelease, { maxItems: 64 })),
  /** Its NICs on networks: the host device, and how they reach the network (and why not a VF). */
  nics: Type.Optional(Type.Array(NicAttachment)),
  /** The balloon: the target this agent set (absent until it sets one), what the guest holds, and what it uses (absent without statistics). */
  memory: Type.Optional(Type.Object({ targetMiB: Type.Optional(Type.Integer()), actualMiB: Type.Integer(), usedMiB: Type.Optional(Type.Integer()) })),
  /** While it stops (state stopping): how, and when a guest that ignores the power button is forced off. */
  stopping: Type.Optional(StopProgress),
});
export type VmReport = Static<typeof VmReport>;

export const VolumeReport = Type.Object({
  id: Type.String(),
  sizeBytes: Type.Integer(),
  usedBytes: Type.Integer(),
  /** Snapshot ids inside the volume. */
  snapshots: Type.Array(Type.String()),
});
export type VolumeReport = Static<typeof VolumeReport>;

/**
 * The host's disk space as its diskd sees it (src/disk/space.ts): the file system holding the
 * volumes, and what the volumes may still allocate together. Optional: older agents do not send it.
 */
export const StorageReport = Type.Object({
  totalBytes: Type.Integer({ minimum: 0 }),
  freeBytes: Type.Integer({ minimum: 0 }),
  /** The volumes' virtual sizes, summed. */
  provisionedBytes: Type.Integer({ minimum: 0 }),
  /** What the volumes may still allocate, summed (unmapped blocks and journals; snapshots' copy-on-write not counted). */
  mayAllocateBytes: Type.Integer({ minimum: 0 }),
});
export type StorageReport = Static<typeof StorageReport>;

const FileRef = Type.Object({ sha256: Type.String(), size: Type.Integer() });

/** A kernel image the agent fetches (kernel and initramfs) to boot a VM directly. */
export const VmImageRef = Type.Object({
  id: Type.String(),
  name: Type.String(),
  cmdline: Type.String(),
  readyMarker: Type.Optional(Type.String()),
  files: Type.Object({ kernel: FileRef, initrd: FileRef }),
});
export type VmImageRef = Static<typeof VmImageRef>;

/** A disk image the agent fetches once per host and clones volumes from. */
export const DiskImageRef = Type.Object({ id: Type.String(), name: Type.String(), file: FileRef });
export type DiskImageRef = Static<typeof DiskImageRef>;

export const VmNic = Type.Object({
  networkId: Type.String(),
  segment: Type.Integer(),
  mac: Type.String(),
  address: Type.String(),
  prefix: Type.Integer(),
  gateway: Type.Optional(Type.String()),
  /** The network's DHCP address: this host serves the NIC its address by DHCP. */
  dhcpServer: Type.Optional(Type.String()),
});
export type VmNic = Static<typeof VmNic>;

export const VmDefinition = Type.Object({
  name: Type.String(),
  vcpus: Type.Integer(),
  memoryMiB: Type.Integer(),
  /** Memory per tier: one memory backend and guest NUMA node each, bound to hostNode where the host has it. */
  memory: Type.Optional(Type.Array(Type.Object({ tier: Type.String(), sizeMiB: Type.Integer(), hostNode: Type.Optional(Type.Integer()) }))),
  /** Direct kernel boot; absent when the VM boots from its first disk. */
  image: Type.Optional(VmImageRef),
  /** Extra kernel command line (direct kernel boot only). */
  kernelArgs: Type.Optional(Type.String()),
  readyMarker: Type.Optional(Type.String()),
  /** Volumes, in order; `boot` marks the one the firmware boots from; `tag` names the attach request (reported back if the guest unplugs it). */
  disks: Type.Array(Type.Object({ volumeId: Type.String(), boot: Type.Boolean(), tag: Type.Optional(Type.String()) })),
  forwardPorts: Type.Array(Type.Integer()),
  /** NICs on Outrig networks: a tap on the network's bridge each; the guest learns its address from the kernel command line. */
  nics: Type.Optional(Type.Array(VmNic)),
  generation: Type.Integer(),
  restartSeq: Type.Integer(),
});
export type VmDefinition = Static<typeof VmDefinition>;

/** A backup repository and its passphrase (the cluster's, sent over the mutual-TLS stream, never journaled or logged). */
export const BackupRepoRef = Type.Object({ path: Type.String(), passphrase: Type.String() });
export type BackupRepoRef = Static<typeof BackupRepoRef>;

/** A guest's MAC on another host and that host's underlay address. */
export const RemoteMac = Type.Object({ mac: Type.String(), dst: Type.String() });
export type RemoteMac = Static<typeof RemoteMac>;

export const AgentOp = Type.Union([
  Type.Object({ opId: Type.String(), kind: Type.Literal('vm.start'), instanceId: Type.String(), vm: VmDefinition }),
  /** force: power the VM off at once instead of pressing its power button and waiting for the guest. */
  Type.Object({ opId: Type.String(), kind: Type.Literal('vm.restart'), instanceId: Type.String(), vm: VmDefinition, force: Type.Optional(Type.Boolean()) }),
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('vm.stop'),
    instanceId: Type.String(),
    generation: Type.Integer(),
    force: Type.Optional(Type.Boolean()),
  }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('vm.delete'), instanceId: Type.String() }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('vm.attach'), instanceId: Type.String(), volumeId: Type.String(), tag: Type.Optional(Type.String()) }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('vm.detach'), instanceId: Type.String(), volumeId: Type.String() }),
  /** Sets the guest's balloon target: the memory it may hold. Idempotent, so not journaled. */
  Type.Object({ opId: Type.String(), kind: Type.Literal('vm.balloon'), instanceId: Type.String(), targetMiB: Type.Integer() }),
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('volume.ensure'),
    volumeId: Type.String(),
    sizeBytes: Type.Integer(),
    blockSize: Type.Optional(Type.Integer()),
    source: Type.Optional(
      Type.Union([
        Type.Object({ volumeId: Type.String(), snapshotId: Type.String() }),
        Type.Object({ image: DiskImageRef }),
        /** Bare-metal recovery: the disk rebuilt from a BMR-ready backup snapshot. */
        Type.Object({ backup: Type.Object({ repository: BackupRepoRef, snapshotId: Type.String() }) }),
      ]),
    ),
  }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('volume.resize'), volumeId: Type.String(), sizeBytes: Type.Integer() }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('volume.delete'), volumeId: Type.String() }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('snapshot.ensure'), volumeId: Type.String(), snapshotId: Type.String() }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('snapshot.delete'), volumeId: Type.String(), snapshotId: Type.String() }),
  /** Backs a volume up from a disk-engine snapshot; answers with a BackupResult. */
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('backup.create'),
    backupId: Type.String(),
    volumeId: Type.String(),
    repository: BackupRepoRef,
    tags: Type.Array(Type.String()),
    source: Type.String(),
  }),
  /** Backs up files of this host (file-level, incremental against the last backup of the same paths). */
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('backup.files'),
    backupId: Type.String(),
    paths: Type.Array(Type.String()),
    repository: BackupRepoRef,
    tags: Type.Array(Type.String()),
    bmr: Type.Optional(Type.Boolean()),
  }),
  /** Restores files of a snapshot under a directory of this host; answers with the count. */
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('backup.restore-files'),
    repository: BackupRepoRef,
    snapshotId: Type.String(),
    target: Type.String(),
    include: Type.Array(Type.String()),
  }),
  Type.Object({ opId: Type.String(), kind: Type.Literal('backup.forget'), repository: BackupRepoRef, snapshotId: Type.String() }),
  /**
   * Stops the running operation `target` (a backup): it ends failing with "cancelled", its partial
   * work removed. Answers at once, with `running: false` when no such operation is running (not yet
   * started, or already answered). Not journaled: a repeat must act again on a re-sent run.
   */
  Type.Object({ opId: Type.String(), kind: Type.Literal('op.cancel'), target: Type.String() }),
  /**
   * Puts the network's segment on this host (bridge, VXLAN device) with exactly these peers in its
   * flood list, and (when given) exactly these MACs of the other hosts' guests, each with its
   * host's underlay address, in its VXLAN forwarding table (the device learns nothing itself).
   */
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('network.ensure'),
    networkId: Type.String(),
    segment: Type.Integer(),
    peers: Type.Array(Type.String()),
    macs: Type.Optional(Type.Array(RemoteMac)),
  }),
  /** The host's instance principal certificate (absent: it left its dedicated cluster): its 802.1X identity on its dedicated port. */
  Type.Object({ opId: Type.String(), kind: Type.Literal('host.principal'), certificate: Type.Optional(Type.String()) }),
  /** Takes the network's segment off this host; fails while a guest's tap is still on it. */
  Type.Object({ opId: Type.String(), kind: Type.Literal('network.remove'), networkId: Type.String(), segment: Type.Integer() }),
  /** Puts files of a volume's backup (paths as the snapshot names them, /p<partition>/...) back into a volume no VM has plugged in. */
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('backup.restore-into-volume'),
    volumeId: Type.String(),
    repository: BackupRepoRef,
    snapshotId: Type.String(),
    include: Type.Array(Type.String()),
  }),
  /** Puts a backup's system-state group back into a volume no VM has plugged in. */
  Type.Object({
    opId: Type.String(),
    kind: Type.Literal('backup.restore-system-state'),
    volumeId: Type.String(),
    repository: BackupRepoRef,
    snapshotId: Type.String(),
  }),
]);
export type AgentOp = Static<typeof AgentOp>;

export const AgentMessage = Type.Union([
  Type.Object({
    type: Type.Literal('hello'),
    protocol: Type.Integer(),
    hostId: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
    name: Type.String(),
    agentVersion: Type.String(),
    inventory: Inventory,
    vms: Type.Array(VmReport),
    volumes: Type.Array(VolumeReport),
    storage: Type.Optional(StorageReport),
  }),
  /** Sent on every heartbeat and on changes (coalesced): the state of the VMs and volumes, and the disk space. */
  Type.Object({ type: Type.Literal('report'), vms: Type.Array(VmReport), volumes: Type.Array(VolumeReport), storage: Type.Optional(StorageReport) }),
  Type.Object({
    type: Type.Literal('op-result'),
    opId: Type.String(),
    ok: Type.Boolean(),
    error: Type.Optional(Type.String()),
    result: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  /** Progress of long operations (backups, restores), at most about once a second. */
  Type.Object({ type: Type.Literal('op-progress'), opId: Type.String(), progress: BackupProgress }),
  /** Base64; at most the credit the controller has granted for the stream (more ends the console). */
  Type.Object({
    type: Type.Literal('console-data'),
    streamId: Type.String({ maxLength: 64 }),
    data: Type.String({ maxLength: (4 * CONSOLE_CHUNK_MAX) / 3 + 4 }),
  }),
  Type.Object({ type: Type.Literal('console-end'), streamId: Type.String(), error: Type.Optional(Type.String()) }),
]);
export type AgentMessage = Static<typeof AgentMessage>;

/**
 * Guests' memory figures move a little all the time: a move smaller than this is not a change worth
 * a report before the next heartbeat (nor a store write in the controller's memory reconciler).
 */
export const MEMORY_REPORT_DEADBAND_MIB = { actualMiB: 4, usedMiB: 8 } as const;

export const ControllerMessage = Type.Union([
  Type.Object({
    type: Type.Literal('welcome'),
    hostId: Type.String(),
    /** The longest an agent goes without a report: a report that repeats the last one is sent this often. */
    heartbeatMs: Type.Integer(),
    /** How often the agent checks its host (exits, balloons, disk space) and reports what changed; heartbeatMs if absent. */
    sweepMs: Type.Optional(Type.Integer()),
  }),
  Type.Object({ type: Type.Literal('op'), op: AgentOp }),
  Type.Object({
    type: Type.Literal('console-open'),
    streamId: Type.String(),
    instanceId: Type.String(),
    follow: Type.Boolean(),
    /** Bytes from the end of the log (the rotated previous file included) to start at. */
    tailBytes: Type.Integer({ minimum: 0 }),
    /**
     * Console bytes the agent may send before the controller grants more (console-credit): the
     * controller grants what its API client has taken, so a slow reader slows the agent's reading.
     */
    window: Type.Integer({ minimum: 1 }),
  }),
  Type.Object({ type: Type.Literal('console-credit'), streamId: Type.String(), bytes: Type.Integer({ minimum: 1 }) }),
  Type.Object({ type: Type.Literal('console-close'), streamId: Type.String() }),
]);
export type ControllerMessage = Static<typeof ControllerMessage>;
