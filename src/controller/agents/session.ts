/** One agent's stream as the hub holds it, and the hub's refusals. */
import type { WebSocket } from 'ws';
import type { StorageReport, VmReport, VolumeReport } from '../../model/agent-protocol.ts';
import type { OpResult } from '../runtime/op-tracker.ts';
import type { ConsoleRelay } from './console-relay.ts';

export interface Session {
  hostId: string;
  /** Of the certificate the stream was opened with. */
  serial: string;
  ws: WebSocket;
  vms: Map<string, VmReport>;
  volumes: Map<string, VolumeReport>;
  /** The disk space, from the same report as `volumes` (absent from agents older than the accounting). */
  storage?: StorageReport;
  inflight: Map<string, { resolve: (r: OpResult) => void; reject: (e: Error) => void }>;
  consoles: Map<string, ConsoleRelay>;
  /** The text of the last report taken: the same text again is a heartbeat and nothing more. */
  lastReport?: string;
}

/** Console bytes an agent may send ahead of what the API client has taken, per console stream. */
export const CONSOLE_WINDOW = 256 * 1024;
/** Console streams open at once per host: with the window, what one agent stream may carry of guests' output. */
export const MAX_CONSOLES_PER_HOST = 16;

export class TooManyConsolesError extends Error {
  constructor(hostId: string) {
    super(`host ${hostId} already has ${MAX_CONSOLES_PER_HOST} console streams open; try again when one is closed`);
  }
}

export class AgentNotConnectedError extends Error {
  constructor(hostId: string) {
    super(`the agent of host ${hostId} is not connected`);
  }
}
