import { createWriteStream } from 'node:fs';
import pino, { type Logger } from 'pino';
import { prettyStream, type LogFormat } from './log-pretty.ts';
import { ensurePrivateFileSync } from './secrets.ts';

/**
 * JSON logs (pino) to stdout, or to a file for the all-in-one `up`, whose terminal is for people;
 * `format: 'pretty'` writes lines for people instead (the daemons' default on a terminal).
 */
export function createLogger(name: string, opts: { file?: string; level?: string; format?: LogFormat } = {}): Logger {
  const level = opts.level ?? process.env.OUTRIG_LOG_LEVEL ?? 'info';
  // Secrets by name, also where an operation carries them (a backup scope's passphrase in op.repository, or op.source.backup.repository).
  const redact = [
    'req.headers.authorization',
    '*.token',
    '*.bootstrapToken',
    '*.adminToken',
    '*.privateKey',
    '*.key',
    'passphrase',
    '*.passphrase',
    '*.*.passphrase',
    '*.*.*.passphrase',
    '*.*.*.*.passphrase',
  ];
  if (opts.file) {
    // Logs name instances, hosts and errors with guest data in them: the owner's only.
    ensurePrivateFileSync(opts.file);
    return pino({ name, level, redact }, createWriteStream(opts.file, { flags: 'a', mode: 0o600 }));
  }
  if (opts.format === 'pretty') return pino({ name, level, redact }, prettyStream(process.stdout));
  return pino({ name, level, redact });
}
