/**
 * A filesystem of a guest's disk, read in the sandbox and written into a directory here (see
 * writer.ts for what is checked). Backups skip what cannot be carried and say so; an edit of a
 * disk in place (restore into a volume) is strict and refuses, so nothing of the guest's is lost.
 */
import { readdirSync } from 'node:fs';
import { FrameReader } from './frames.ts';
import { runReader } from './run-reader.ts';
import { TreeWriter, type Skipped } from './writer.ts';

export interface ExtractOptions {
  /** Where the filesystem is on the disk, and the disk's size. */
  offset: number;
  size: number;
  diskSize: number;
  /** Refuse, instead of skipping, anything that cannot be carried. */
  strict?: boolean;
  timeoutMs?: number;
}

export interface ExtractResult {
  entries: number;
  bytes: number;
  skipped: Skipped[];
  skippedCount: number;
  /** What was left out and does not count as lost (sockets). */
  notes: string[];
  /** Extended attributes to set on what was written (path, name, base64 value). */
  xattrs: [string, { name: string; value: string }[]][];
}

/** The filesystem at `o.offset` of `disk`, written into the empty directory `dir`. */
export async function extractFilesystem(disk: string, dir: string, o: ExtractOptions): Promise<ExtractResult> {
  if (readdirSync(dir).length) throw new Error(`${dir} is not empty`);
  const writer = new TreeWriter(dir, {
    maxBytes: o.size + 1024 * 1024,
    maxFileBytes: o.size,
    maxApparentBytes: 16 * o.size,
    maxEntries: Math.max(100_000, Math.floor(o.size / 256)),
  });
  const frames = new FrameReader();
  try {
    await runReader(disk, {
      args: ['extract', o.diskSize, o.offset, o.size],
      // Generous: a slow disk reads 20 MB/s; a reader made to spin by a hostile tree is stopped.
      timeoutMs: o.timeoutMs ?? 600_000 + o.size / 20_000,
      maxOutputBytes: Number.MAX_SAFE_INTEGER,
      onStdout: (chunk) => {
        for (const { frame, data } of frames.push(chunk)) writer.write(frame, data);
      },
      what: 'the disk reader',
    });
    if (frames.pending) throw new Error('the disk reader stopped in the middle of a frame');
    writer.finish();
  } catch (e) {
    writer.abort();
    throw e;
  }
  if (o.strict && writer.skippedCount) {
    const list = writer.skipped
      .slice(0, 5)
      .map((s) => `${s.path}: ${s.why}`)
      .join('; ');
    throw new Error(
      `the filesystem holds ${writer.skippedCount} entr${writer.skippedCount === 1 ? 'y' : 'ies'} Outrig cannot carry through a rebuild (${list}${writer.skippedCount > 5 ? '; ...' : ''}): fix them in the guest first, or rebuild the disk from the backup (restore into a new volume)`,
    );
  }
  return {
    entries: writer.entries,
    bytes: writer.bytes,
    skipped: writer.skipped,
    skippedCount: writer.skippedCount,
    notes: writer.notes,
    xattrs: writer.xattrs,
  };
}
