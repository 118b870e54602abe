/** Outrig's resource and protocol types (TypeBox schemas): the shared kernel every subsystem may import directly. */
export * from './agent-protocol.ts';
export * from './backup.ts';
export * from './common.ts';
export * from './conditions.ts';
export * from './host-cluster.ts';
export * from './host.ts';
export * from './image.ts';
export * from './instance.ts';
export * from './memory.ts';
export * from './network.ts';
export * from './tenant.ts';
export * from './trust.ts';
export * from './volume.ts';
