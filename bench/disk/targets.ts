/**
 * bench:disk's targets: Outrig's engine (`outrig disk serve`) and qemu-nbd on raw and qcow2 images
 * in the layouts a host might use. Every target is served over a UNIX socket and driven by fio.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { DiskEngine } from '../../src/disk/engine.ts';
import { spawnOutrig, stopDaemon, type Daemon } from '../../test/helpers/processes.ts';
import { waitUntil } from '../../test/helpers/wait.ts';

export type Cache = 'writethrough' | 'writeback';

export interface Target {
  key: string;
  /** Column heading in the results table. */
  label: string;
  kind: 'outrig' | 'raw' | 'qcow2';
  create(path: string, size: number): void;
}

const qcow2 = (key: string, label: string, opts: string[]): Target => ({
  key,
  label,
  kind: 'qcow2',
  create: (path, size) => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...(opts.length ? ['-o', opts.join(',')] : []), path, String(size)]),
});

export const OUTRIG: Target = { key: 'outrig', label: 'Outrig', kind: 'outrig', create: (path, size) => void DiskEngine.create(path, { size }) };

export const BASELINES: Target[] = [
  { key: 'raw_falloc', label: 'raw fallocated', kind: 'raw', create: (path, size) => execFileSync('fallocate', ['-l', String(size), path]) },
  { key: 'raw_sparse', label: 'raw sparse', kind: 'raw', create: (path, size) => execFileSync('truncate', ['-s', String(size), path]) },
  qcow2('qcow2', 'qcow2', []),
  qcow2('qcow2_lazy', 'qcow2 lazy_refcounts', ['lazy_refcounts=on']),
  qcow2('qcow2_l2ext', 'qcow2 extended_l2 128k', ['extended_l2=on', 'cluster_size=128k']),
];

/** --quick: one raw layout and one qcow2, enough for every figure (the quick figures are not recorded). */
export const QUICK_BASELINES = ['raw_sparse', 'qcow2_lazy'];

export interface Served {
  /** The server's process id (for strace and CPU accounting). */
  pid: number;
  stop(): Promise<void>;
}

/** Serves image on sock with the given cache mode; resolves once the socket exists. */
export async function serve(t: Target, cache: Cache, image: string, sock: string): Promise<Served> {
  rmSync(sock, { force: true });
  let proc: ChildProcess | Daemon;
  if (t.kind === 'outrig') proc = spawnOutrig(['disk', 'serve', image, '--socket', sock, '--cache', cache], { OUTRIG_LOG_LEVEL: 'warn' });
  else proc = spawn('qemu-nbd', ['-f', t.kind, `--cache=${cache}`, '--aio=threads', '-k', sock, '-t', image], { stdio: 'ignore' });
  const exited = () => ('proc' in proc ? proc.proc.exitCode : proc.exitCode) !== null;
  await waitUntil(
    `${t.key} socket`,
    () => {
      if (exited()) throw new Error(`${t.key} server exited${'proc' in proc ? `: ${proc.output()}` : ''}`);
      return existsSync(sock);
    },
    20_000,
    20,
  );
  return {
    pid: ('proc' in proc ? proc.proc.pid : proc.pid)!,
    async stop() {
      if ('proc' in proc) await stopDaemon(proc);
      else if (proc.exitCode === null) {
        const gone = new Promise((r) => (proc as ChildProcess).once('exit', r));
        proc.kill('SIGTERM');
        await gone;
      }
    },
  };
}
