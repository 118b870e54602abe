/**
 * Confined execution for tools that read guest data (a guest's disk above all): the tool runs under
 * bubblewrap in fresh user, mount, PID, network, IPC and UTS namespaces, sees the system's programs
 * read-only and nothing else of the host but what the caller names, can write only the directories
 * it is given, has no capabilities, is killed after a time limit, and may not write files or output
 * past size limits. As root, it also runs as a user of its own (SANDBOX_UID, never a real
 * account's): even a kernel bug in a namespace leaves it without the host's root.
 *
 * Tools that must read files of every owner (mkfs -d on a restored tree: those files came from
 * our own restorer, not from a disk's structures) use `identity: 'reader'`: root's uid with only
 * CAP_DAC_READ_SEARCH, in the same mount, PID and network confinement.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, lstatSync, readlinkSync } from 'node:fs';
import { dirname } from 'node:path';

/** The sandbox's own uid and gid (as root): no account has it, so nothing on the host is its. */
export const SANDBOX_UID = Number(process.env.OUTRIG_SANDBOX_UID ?? 2147418112);

export interface ConfineOptions {
  /** Directories the tool may write (bound read-write at the same path); given to the sandbox's user. */
  writable?: string[];
  /** Files or directories it may read besides the system's programs (bound read-only at the same path). */
  readable?: string[];
  /** Open file descriptors handed to the tool as fd 3, 4, ... (reopening /proc/self/fd/N is checked against the sandbox's user). */
  fds?: number[];
  /** Fed to the tool's standard input. */
  input?: string | Buffer;
  /** Killed after this long (the error says so). */
  timeoutMs: number;
  /** Largest file the tool may write (RLIMIT_FSIZE); default 0: it writes none. */
  maxFileBytes?: number;
  /** Standard output kept (collected) or allowed (streamed) before the tool is killed; default 64 MiB. */
  maxOutputBytes?: number;
  /** Standard output as it comes, instead of collected; what it throws stops the tool and becomes the error. */
  onStdout?: (chunk: Buffer) => void;
  /** 'nobody' (default): the sandbox's own uid. 'reader': root that may only read (see above); for a caller that is not root, the caller itself. */
  identity?: 'nobody' | 'reader';
  /** What to call the tool in errors. */
  what?: string;
}

export interface ConfinedResult {
  stdout: Buffer;
  stderr: string;
}

export class ConfinedError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

const STDERR_KEPT = 64 * 1024;
/** The sandbox's own /tmp (memory): scratch for the tool, gone with it. */
const TMP_BYTES = 64 * 1024 * 1024;

/** Control characters of a tool's message (which may quote a guest's bytes) shown escaped. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  return s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The system's program directories, as they are here: merged-/usr symlinks stay symlinks. */
function systemBinds(): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const d of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    if (!existsSync(d)) continue;
    if (lstatSync(d).isSymbolicLink()) args.push('--symlink', readlinkSync(d), d);
    else args.push('--ro-bind', d, d);
  }
  args.push('--perms', '0755', '--dir', '/etc');
  for (const f of ['/etc/ld.so.cache', '/etc/ld.so.conf']) if (existsSync(f)) args.push('--ro-bind', f, f);
  // Node itself, when it is not a system package (nvm, /opt).
  const node = dirname(process.execPath);
  if (!node.startsWith('/usr/') && !node.startsWith('/bin')) args.push('--ro-bind', node, node);
  return args;
}

/**
 * The command line: prlimit (file size, no core dumps), then bwrap (namespaces and binds), then,
 * as root, setpriv inside it: bwrap sets the mounts up with root's rights (so it can bind a
 * directory inside root's 0700 ones), and setpriv then drops to SANDBOX_UID with no capabilities
 * and no way back before the tool starts. As another user, bwrap's own user namespace does that.
 */
export function confinedCommand(command: string, args: string[], o: ConfineOptions): { file: string; argv: string[] } {
  const root = process.getuid?.() === 0;
  const reader = root && o.identity === 'reader';
  const bwrap = ['--die-with-parent', '--new-session', '--clearenv', '--setenv', 'PATH', '/usr/sbin:/usr/bin:/sbin:/bin', '--setenv', 'LC_ALL', 'C'];
  bwrap.push(...(root ? ['--unshare-ipc', '--unshare-pid', '--unshare-net', '--unshare-uts', '--unshare-cgroup-try'] : ['--unshare-all']));
  bwrap.push(...systemBinds(), '--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--size', String(TMP_BYTES), '--tmpfs', '/tmp');
  // Bound at their own paths; the directories leading there are made traversable (bwrap would copy root's 0700).
  const made = new Set(['/', '/tmp', '/etc']);
  const bind = (how: string, p: string) => {
    const chain: string[] = [];
    for (let d = dirname(p); !made.has(d); d = dirname(d)) chain.unshift(d);
    for (const d of chain) {
      made.add(d);
      bwrap.push('--perms', '0755', '--dir', d);
    }
    bwrap.push(how, p, p);
  };
  for (const r of o.readable ?? []) bind('--ro-bind', r);
  for (const w of o.writable ?? []) bind('--bind', w);
  const tool = [command, ...args];
  if (reader) bwrap.push('--cap-drop', 'ALL', '--cap-add', 'CAP_DAC_READ_SEARCH');
  else if (root)
    tool.unshift(
      'setpriv',
      `--reuid=${SANDBOX_UID}`,
      `--regid=${SANDBOX_UID}`,
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
    );
  else bwrap.push('--cap-drop', 'ALL');
  return { file: 'prlimit', argv: [`--fsize=${o.maxFileBytes ?? 0}`, '--core=0', '--', 'bwrap', ...bwrap, '--', ...tool] };
}

/** Whether bubblewrap is here (the sandbox needs it). */
export function sandboxAvailable(): boolean {
  return ['/usr/bin/bwrap', '/bin/bwrap', '/usr/local/bin/bwrap'].some((p) => existsSync(p));
}

/**
 * Runs `command args` confined; resolves with its output when it exits 0, rejects with a clear
 * error otherwise (exit code, its stderr escaped, or the limit it hit).
 */
export function runConfined(command: string, args: string[], o: ConfineOptions): Promise<ConfinedResult> {
  const what = o.what ?? command;
  if (!sandboxAvailable())
    return Promise.reject(new Error(`bubblewrap is missing: install Debian's bubblewrap package (${what} reads guest data and runs only inside a sandbox)`));
  if (process.getuid?.() === 0 && o.identity !== 'reader') for (const w of o.writable ?? []) chownSync(w, SANDBOX_UID, SANDBOX_UID);
  const { file, argv } = confinedCommand(command, args, o);
  const maxOut = o.maxOutputBytes ?? 64 * 1024 * 1024;
  return new Promise<ConfinedResult>((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe', ...(o.fds ?? [])] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let stderr = '';
    let failure: string | undefined;
    const kill = (why: string) => {
      failure ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`${what} did not finish within ${Math.round(o.timeoutMs / 1000)} s and was stopped`), o.timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      outBytes += d.length;
      if (outBytes > maxOut) return kill(`${what} wrote more than ${maxOut} bytes of output and was stopped`);
      if (o.onStdout) {
        try {
          o.onStdout(d);
        } catch (e) {
          kill((e as Error).message);
        }
      } else out.push(d);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < STDERR_KEPT) stderr += d.slice(0, STDERR_KEPT - stderr.length);
    });
    child.stdin!.on('error', () => undefined); // it exited before reading all: its exit says why
    child.stdin!.end(o.input ?? '');
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not start the sandbox for ${what}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const msg = printable(stderr.trim());
      if (failure) return reject(new ConfinedError(failure, code, msg));
      if (code !== 0) return reject(new ConfinedError(`${what} failed (${signal ? `signal ${signal}` : `exit ${code}`})${msg ? `: ${msg}` : ''}`, code, msg));
      resolve({ stdout: Buffer.concat(out), stderr: msg });
    });
  });
}
