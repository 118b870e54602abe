/** A logger whose lines a test can read. */
import pino from 'pino';

export function capturingLog(): { log: pino.Logger; lines: () => string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { log, lines: () => lines };
}
