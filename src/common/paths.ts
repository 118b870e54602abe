import { homedir } from 'node:os';
import { join } from 'node:path';

/** $OUTRIG_DATA, else ~/.local/share/outrig (DESIGN.md: Defaults). */
export function dataRoot(): string {
  return process.env.OUTRIG_DATA || join(homedir(), '.local', 'share', 'outrig');
}

export const DEFAULT_API_HOST = '127.0.0.1';
export const DEFAULT_API_PORT = 7440;

/** OUTRIG_URL, else the default API address. */
export function apiUrl(): string {
  return process.env.OUTRIG_URL || `https://${DEFAULT_API_HOST}:${DEFAULT_API_PORT}`;
}
