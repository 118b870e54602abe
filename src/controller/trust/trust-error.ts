/** A refusal of the trust service, with the HTTP status and code the API answers it with. */
import { createHash } from 'node:crypto';

export class TrustError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function sha256Hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
