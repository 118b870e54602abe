/** An error the CLI reports as one line on stderr with a non-zero exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const FILE_PROBLEMS: Record<string, string> = {
  ENOENT: 'does not exist',
  EACCES: 'cannot be read or written by this user (permission denied)',
  EPERM: 'cannot be opened by this user (operation not permitted)',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'is not under a directory (a part of the path is a file)',
  ELOOP: 'is a loop of symbolic links',
};

/**
 * A file system error said plainly ("file '/tmp/x' does not exist") instead of Node's
 * "ENOENT: no such file or directory, open '/tmp/x'"; undefined for any other error.
 */
export function fileErrorText(e: unknown): string | undefined {
  const err = e as { code?: unknown; path?: unknown };
  if (typeof err?.code !== 'string' || typeof err.path !== 'string') return undefined;
  const problem = FILE_PROBLEMS[err.code];
  return problem ? `file '${err.path}' ${problem}` : undefined;
}
