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
