/** Runs the disk reader in the sandbox on a disk (image file or block device) opened read-only here. */
import { closeSync, openSync } from 'node:fs';
import { runConfined } from '../sandbox/index.ts';
import { readerBundle } from './bundle.ts';

interface ReaderRun {
  args: (string | number)[];
  timeoutMs: number;
  maxOutputBytes?: number;
  onStdout?: (chunk: Buffer) => void;
  what: string;
}

export async function runReader(disk: string, r: ReaderRun): Promise<Buffer> {
  const fd = openSync(disk, 'r');
  try {
    const out = await runConfined(process.execPath, ['--max-old-space-size=512', '--input-type=module', '-', ...r.args.map(String)], {
      fds: [fd],
      input: readerBundle(),
      timeoutMs: r.timeoutMs,
      maxOutputBytes: r.maxOutputBytes,
      onStdout: r.onStdout,
      what: r.what,
    });
    return out.stdout;
  } finally {
    closeSync(fd);
  }
}
