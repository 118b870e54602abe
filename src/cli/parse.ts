/** Parsers for command-line values; each throws a CliError (exit code 2) that names the bad value. */
import { CliError } from './errors.ts';

export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

export function parseIntStrict(what: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v)) throw new CliError(`${what} must be a whole number, got '${v}'`, 2);
    return Number(v);
  };
}

/** A whole number within [min, max]: limits and timeouts, where 0 or a negative would switch a protection off. */
export function parseIntIn(what: string, min: number, max: number) {
  return (v: string): number => {
    const n = parseIntStrict(what)(v);
    if (n < min || n > max) throw new CliError(`${what} must be from ${min} to ${max}, got '${v}'`, 2);
    return n;
  };
}

/** "256", "256M", "2G" -> MiB. */
export function parseMemory(v: string): number {
  const m = /^(\d+)\s*([MmGg](i?B)?)?$/.exec(v.trim());
  if (!m) throw new CliError(`invalid memory size '${v}' (examples: 256, 512M, 2G)`, 2);
  const n = Number(m[1]);
  return m[2] && /^g/i.test(m[2]) ? n * 1024 : n;
}

export function parseLabels(list: string[]): Record<string, string> | undefined {
  if (!list.length) return undefined;
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf('=');
    if (i <= 0) throw new CliError(`invalid label '${l}' (use key=value)`, 2);
    out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

/** "HOST:PORT", ":PORT" or "PORT". */
export function parseListen(v: string, defaultHost: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(v.trim());
  if (!m) throw new CliError(`invalid listen address '${v}' (use HOST:PORT)`, 2);
  return { host: m[1] || defaultHost, port: Number(m[2]) };
}

/** "90s", "15m", "24h", "7d" -> milliseconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+)\s*([smhd])$/.exec(v.trim());
  if (!m) throw new CliError(`invalid duration '${v}' (examples: 90s, 15m, 24h, 7d)`, 2);
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/** "0.25" -> 0.25, within [min, max]. */
export function parseNumberIn(what: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+(\.\d+)?$/.test(v.trim()) || n < min || n > max) throw new CliError(`${what} must be a number from ${min} to ${max}, got '${v}'`, 2);
    return n;
  };
}
