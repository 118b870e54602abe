/** Output for people (tables) and programs (--json). */
import Table from 'cli-table3';

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/** A borderless, kubectl-style table. */
export function printTable(head: string[], rows: (string | number)[][]): void {
  const t = new Table({
    head,
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const r of rows) t.push(r.map(String));
  process.stdout.write(
    t
      .toString()
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n') + '\n',
  );
}

export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

export function mib(n: number | undefined): string {
  if (n === undefined) return '-';
  return n >= 10240 ? `${(n / 1024).toFixed(1)}G` : `${n}M`;
}

/** Prints "key: value" lines, nested objects indented; for `show` commands. */
export function printDetails(obj: Record<string, unknown>, indent = ''): void {
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      if (Object.keys(v).length === 0) {
        process.stdout.write(`${indent}${k}: {}\n`);
        continue;
      }
      process.stdout.write(`${indent}${k}:\n`);
      printDetails(v as Record<string, unknown>, indent + '  ');
    } else if (Array.isArray(v)) {
      if (v.length === 0) {
        process.stdout.write(`${indent}${k}: []\n`);
        continue;
      }
      process.stdout.write(`${indent}${k}:\n`);
      for (const item of v) {
        if (item !== null && typeof item === 'object') {
          const entries = Object.entries(item as Record<string, unknown>).filter(([, x]) => x !== undefined && x !== '');
          process.stdout.write(`${indent}  - ${entries.map(([a, b]) => `${a}=${typeof b === 'object' ? JSON.stringify(b) : String(b)}`).join(' ')}\n`);
        } else process.stdout.write(`${indent}  - ${String(item)}\n`);
      }
    } else process.stdout.write(`${indent}${k}: ${String(v)}\n`);
  }
}
