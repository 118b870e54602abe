/**
 * Extended attributes (and with them POSIX ACLs, which Linux keeps as system.posix_acl_* xattrs).
 * Node has no xattr calls, so this adapter runs getfattr/setfattr (Debian's `attr` package) once
 * per backup root and once per restore, in their dump format, not once per file.
 */
import { spawn } from 'node:child_process';

export interface Xattr {
  name: string;
  /** base64 */
  value: string;
}

/** getfattr writes names with octal escapes for unusual bytes (\012, \\ and so on). */
function unescapeName(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

function escapeName(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8'))
    out += b < 0x21 || b > 0x7e || b === 0x5c || b === 0x3d ? `\\${b.toString(8).padStart(3, '0')}` : String.fromCharCode(b);
  return out;
}

/** Parses `getfattr -d -m - -e base64` output into xattrs by absolute path. */
function parseDump(text: string): Map<string, Xattr[]> {
  const out = new Map<string, Xattr[]>();
  let file: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      file = unescapeName(line.slice(8));
      continue;
    }
    const eq = line.indexOf('=');
    if (!file || eq <= 0) continue;
    const raw = line.slice(eq + 1);
    const value = raw.startsWith('0s')
      ? raw.slice(2)
      : raw.startsWith('"')
        ? Buffer.from(JSON.parse(raw) as string).toString('base64')
        : Buffer.from(raw.replace(/^0x/, ''), 'hex').toString('base64');
    out.set(file, [...(out.get(file) ?? []), { name: unescapeName(line.slice(0, eq)), value }]);
  }
  return out;
}

function formatDump(entries: Iterable<[string, Xattr[]]>): string {
  let s = '';
  for (const [path, attrs] of entries) {
    s += `# file: ${escapeName(path)}\n`;
    for (const a of attrs) s += `${escapeName(a.name)}=0s${a.value}\n`;
    s += '\n';
  }
  return s;
}

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT' ? new Error(`${cmd} is missing: install Debian's attr package`) : e));
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    if (input !== undefined) {
      p.stdin!.on('error', () => undefined); // it exited early: its exit code and stderr say why
      p.stdin!.end(input);
    }
  });
}

/** Every xattr under the roots (not following symlinks), by absolute path. */
export async function readXattrs(roots: string[]): Promise<Map<string, Xattr[]>> {
  if (!roots.length) return new Map();
  const r = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', '--', ...roots]);
  // Exit 1 with output means some files could not be read (e.g. vanished): keep what was read.
  if (r.code !== 0 && !r.stdout) throw new Error(`getfattr failed: ${r.stderr.trim()}`);
  return parseDump(r.stdout);
}

/** Sets the xattrs (paths already mapped to where they are restored). */
export async function writeXattrs(entries: [string, Xattr[]][]): Promise<void> {
  if (!entries.length) return;
  const r = await run('setfattr', ['-h', '--restore=-'], formatDump(entries));
  if (r.code !== 0) throw new Error(`setfattr failed: ${r.stderr.trim()}`);
}
