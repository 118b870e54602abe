/**
 * The controller's public face: the Controller (runtime, reconcilers, services), the agent hub,
 * trust, metrics and the pure pieces the API shows to users (placement explanations, plans).
 */
export { Controller } from './setup.ts';
export type { ControllerOptions } from './context.ts';
export type { Kind } from './runtime/reconciler.ts';
export { realClock } from './runtime/clock.ts';
export { AgentHub, AgentNotConnectedError, TooManyConsolesError } from './agents/hub.ts';
export { TrustService } from './trust/service.ts';
export { createMetrics, type ControllerMetrics } from './metrics.ts';
export { ImageFiles } from './images/files.ts';
export { DEFAULT_ALLOCATION_POLICY, type AllocationPolicy } from './placement/scheduler.ts';
export type { Peer } from './trust/service.ts';
export { TrustError } from './trust/service.ts';
export type { PendingLimits } from './trust/pending-hosts.ts';
export { ChecksumMismatchError } from './images/files.ts';
export { retentionProblem, scheduleProblem } from './backup-policies/plan.ts';
// The services the API calls (Controller exposes them), and their refusal.
export { ServiceError } from './services/errors.ts';
export type { BackupService, CreateBackupInput, FilesRestored, RestoreFilesInput, VolumeRestored } from './services/backups.ts';
export type { BackupPolicyService, CreateBackupPolicyInput } from './services/backup-policies.ts';
export type { ImageService } from './services/images.ts';
export type { HostService } from './services/hosts.ts';
export type { CloneInput, CreateVolumeInput, VolumeService } from './services/volumes.ts';
export type { CreateHostClusterInput, HostClusterService, Principals } from './services/host-clusters.ts';
export type { CreateInstanceInput, InstanceService, PowerAction } from './services/instances.ts';
export type { CreateNetworkInput, NetworkService } from './services/networks.ts';
export type { MemoryService, PoolInput, PoolPatch } from './services/memory.ts';
export type { TenantInput, TenantService } from './services/tenants.ts';
