/** The disk engine's errors: each carries the NBD error number a server answers with. */
export class DiskError extends Error {
  constructor(
    message: string,
    /** NBD error number to answer with. */
    readonly errno: number,
  ) {
    super(message);
  }
}
export const EIO = 5;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EPERM = 1;

/** The host's file system is full (or a quota or size limit is hit): a request's problem, not the disk's. */
export function isOutOfSpace(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG' || (e instanceof DiskError && e.errno === ENOSPC);
}

/** An I/O error as the engine answers it: out of space keeps its number, anything else is EIO. */
export function asDiskError(e: unknown): DiskError {
  if (e instanceof DiskError) return e;
  if (isOutOfSpace(e)) return new DiskError('no space left on the host', ENOSPC);
  return new DiskError((e as Error).message, EIO);
}
