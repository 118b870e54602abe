/** The discovery subsystem's public face: what other subsystems may use. */
export { DiscoveryResponder, newNonce } from './responder.ts';
export type { Capabilities } from './policy.ts';
export { seal } from './messages.ts';
export { ControllerInfo } from './messages.ts';
export type { Discover, Policy } from './messages.ts';
export { discoverController, verifyAck } from './client.ts';
export type { Acknowledged, Identity } from './client.ts';
