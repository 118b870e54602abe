/** The api subsystem's public face: what other subsystems may use. */
export { DEFAULT_CONNECTION_LIMITS } from './connection-guard.ts';
export type { ConnectionLimits } from './connection-guard.ts';
export { buildApi } from './server.ts';
