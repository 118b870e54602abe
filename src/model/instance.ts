import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';
import { InstanceMemory } from './memory.ts';
import { InstanceNic } from './network.ts';

const INSTANCE_PHASES = ['pending', 'scheduled', 'starting', 'running', 'stopping', 'stopped', 'failed', 'deleting'] as const;
export type InstancePhase = (typeof INSTANCE_PHASES)[number];

export const PortForward = Type.Object({ guestPort: Type.Integer(), hostAddress: Type.String(), hostPort: Type.Integer() });
export type PortForward = Static<typeof PortForward>;

const PowerState = Type.Union([Type.Literal('running'), Type.Literal('stopped')]);
type PowerState = Static<typeof PowerState>;

/**
 * A stop under way on the host: `acpi` pressed the power button and waits for the guest until
 * `forceAt`, when it is powered off; `force` powers it off at once (stop --force, or a stop forced
 * while waiting).
 */
export const StopProgress = Type.Object({
  method: Type.Union([Type.Literal('acpi'), Type.Literal('force')]),
  since: Type.String(),
  forceAt: Type.Optional(Type.String()),
});
export type StopProgress = Static<typeof StopProgress>;

export const InstanceSpec = Type.Object({
  /** Image name; absent when the instance boots from a volume given by bootVolume. */
  image: Type.Optional(Type.String()),
  /** Volume id the instance boots from (a clone of a disk image, or any bootable volume). */
  bootVolume: Type.Optional(Type.String()),
  /** Extra kernel command line for kernel images. */
  kernelArgs: Type.Optional(Type.String()),
  /** What the guest prints on its serial console when it is up (default: its image's). */
  readyMarker: Type.Optional(Type.String()),
  vcpus: Type.Integer(),
  memoryMiB: Type.Integer(),
  tenant: Type.String(),
  powerState: PowerState,
  /** Guest TCP ports forwarded to the host (user-mode networking). */
  forwardPorts: Type.Array(Type.Integer()),
  /** NICs on Outrig networks, in the order the guest sees them (after the management NIC). */
  nics: Type.Optional(Type.Array(InstanceNic)),
  /** Bumped by each restart request; the agent restarts when it has applied fewer. */
  restartSeq: Type.Integer(),
  /** The stop or restart asked for last powers the VM off at once, without waiting for the guest (stop/restart --force). */
  forceOff: Type.Optional(Type.Boolean()),
});
export type InstanceSpec = Static<typeof InstanceSpec>;

export const LastOp = Type.Object({
  opId: Type.String(),
  kind: Type.String(),
  state: Type.Union([Type.Literal('sent'), Type.Literal('succeeded'), Type.Literal('failed')]),
  error: Type.Optional(Type.String()),
  at: Type.String(),
});
export type LastOp = Static<typeof LastOp>;

export const InstanceStatus = Type.Object({
  phase: Type.Enum(INSTANCE_PHASES),
  conditions: Type.Array(Condition),
  hostId: Type.Optional(Type.String()),
  hostName: Type.Optional(Type.String()),
  accel: Type.Optional(Type.String()),
  network: Type.Object({
    forwards: Type.Array(PortForward),
    /** How each NIC on a network is attached on its host (tap, or a virtual function), and why. */
    nics: Type.Optional(
      Type.Array(
        Type.Object({
          tap: Type.Optional(Type.String()),
          pciAddress: Type.Optional(Type.String()),
          mac: Type.String(),
          mode: Type.String(),
          reason: Type.String(),
        }),
      ),
    ),
  }),
  /** The spec generation the agent last acted on. */
  observedGeneration: Type.Integer(),
  bootedAt: Type.Optional(Type.String()),
  readyAt: Type.Optional(Type.String()),
  /** Human explanation of the phase when it is not self-evident (why pending, why failed). */
  message: Type.Optional(Type.String()),
  lastOp: Type.Optional(LastOp),
  /** Where its memory comes from (set with its placement) and its balloon. */
  memory: Type.Optional(InstanceMemory),
  /** While it stops: how, and when a guest that ignores the power button is forced off. */
  stopping: Type.Optional(StopProgress),
});
export type InstanceStatus = Static<typeof InstanceStatus>;

export const InstanceResource = resourceSchema('Instance', InstanceSpec, InstanceStatus);
export type Instance = Resource<InstanceSpec, InstanceStatus>;
