/** Facts about QEMU processes read from /proc: liveness that survives pid reuse and zombies. */
import { readFile, readdir } from 'node:fs/promises';

/** Reads /proc/<pid>/cmdline as an argv; null if the process is gone. */
async function readCmdline(pid: number): Promise<string[] | null> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** Process state letter from /proc/<pid>/stat (R, S, D, Z, ...); null if gone. */
async function processState(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself contain ") ", so split after the last one.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) || null;
  } catch {
    return null;
  }
}

/**
 * True if pid is a live (non-zombie) process whose command line mentions `marker`.
 * A pidfile alone is not proof: the pid may have been reused by an unrelated process.
 */
export async function isLiveProcessWith(pid: number, marker: string): Promise<boolean> {
  const argv = await readCmdline(pid);
  if (!argv || !argv.some((a) => a.includes(marker))) return false;
  const st = await processState(pid);
  return st !== null && st !== 'Z' && st !== 'X';
}

/** Lists pids of live processes whose command line mentions `marker`. */
export async function findProcessesWith(marker: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
  const out: number[] = [];
  for (const pid of pids) if (await isLiveProcessWith(pid, marker)) out.push(pid);
  return out;
}
