/**
 * Log lines for people: pino writes JSON, and an agent or controller run on a terminal turns each
 * line into `12:04:05 INFO  agent: msg key=value …`. Log lines carry what guests and the LAN sent
 * (console text, names, error messages), so control characters never reach the terminal raw: the
 * message has them escaped and every other value is JSON (which escapes them) unless it is plain.
 */
import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);
const PLAIN = /^[\w.:/@+,=-]{1,200}$/;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const escapeControls = (s: string) => s.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

// JSON escapes C0 controls but leaves C1 (0x9b is CSI on many terminals) as it is.
const json = (v: unknown) => escapeControls(JSON.stringify(v) ?? 'undefined');

function value(v: unknown): string {
  if (typeof v === 'string') return PLAIN.test(v) ? v : json(v);
  if (v && typeof v === 'object' && 'message' in v && typeof (v as { message: unknown }).message === 'string') return json((v as { message: string }).message);
  return json(v);
}

/** One JSON log line as text; a line that is not a JSON object is shown escaped, as it came. */
export function prettyLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return escapeControls(line);
    o = parsed as Record<string, unknown>;
  } catch {
    return escapeControls(line);
  }
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString().slice(11, 19) : '--:--:--';
  const level = (LEVELS[o.level as number] ?? String(o.level)).padEnd(5);
  const name = typeof o.name === 'string' ? `${escapeControls(o.name)}: ` : '';
  const msg = typeof o.msg === 'string' ? escapeControls(o.msg) : '';
  const rest = Object.entries(o)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${escapeControls(k)}=${value(v)}`);
  return [`${time} ${level} ${name}${msg}`, ...rest].join(' ');
}

/** A stream pino can write to that prints `prettyLine` of each line to `out`. */
export function prettyStream(out: NodeJS.WritableStream = process.stderr): Writable {
  let carry = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      const lines = (carry + chunk.toString('utf8')).split('\n');
      carry = lines.pop() ?? '';
      for (const l of lines) if (l) out.write(prettyLine(l) + '\n');
      done();
    },
  });
}

export type LogFormat = 'pretty' | 'json';

/** Pretty on a terminal, JSON otherwise (a file, a pipe, journald). */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stdout): LogFormat {
  return stream.isTTY ? 'pretty' : 'json';
}
