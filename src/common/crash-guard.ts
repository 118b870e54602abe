/**
 * What a long-running daemon does with an error nobody handled. Node's default is to exit, which in
 * `outrig up` takes the API, the agent and every open console down with one forgotten promise; a
 * daemon that installs this guard logs the error and keeps serving instead.
 */
import type { Logger } from 'pino';

interface GuardOptions {
  /**
   * Exit on an uncaught exception (not on a rejection): for a process whose in-memory state must
   * not outlive a half-run callback (diskd: the agent starts it again and QEMU reconnects).
   */
  exitOnException?: boolean;
  exit?: (code: number) => void;
}

/** Installs the handlers; returns a function that removes them. */
export function guardProcess(log: Logger, o: GuardOptions = {}): () => void {
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const onRejection = (reason: unknown) => log.error({ err: reason }, 'unhandled promise rejection; still serving');
  const onException = (err: Error, origin: string) => {
    if (!o.exitOnException) return log.error({ err, origin }, 'uncaught exception; still serving');
    log.fatal({ err, origin }, 'uncaught exception; exiting');
    exit(70);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
