import { findProcessesWith } from '../../src/hypervisor/process.ts';

/** Kills every process (QEMU, diskd) whose command line mentions `dir` (a test's data dir), so a failed test leaves nothing running. */
export async function killProcessesUnder(dir: string): Promise<number> {
  const pids = await findProcessesWith(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids.length;
}
