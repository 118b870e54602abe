import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { VolumeBackups } from '../../../src/agent/backups.ts';
import { ProgressThrottle, type ThrottleClock } from '../../../src/agent/progress.ts';
import type { Storage } from '../../../src/agent/storage.ts';
import type { BackupProgress } from '../../../src/model/backup.ts';
import { tempDir } from '../../helpers/tmp.ts';

/** A clock the test moves by hand, with the timers it has set. */
function fakeClock() {
  let t = 0;
  const timers = new Set<{ at: number; fn: () => void }>();
  const clock: ThrottleClock = {
    now: () => t,
    setTimeout: (fn, ms) => {
      const h = { at: t + ms, fn };
      timers.add(h);
      return h;
    },
    clearTimeout: (h) => void timers.delete(h as { at: number; fn: () => void }),
  };
  const advance = (ms: number) => {
    t += ms;
    for (const h of [...timers].filter((x) => x.at <= t)) {
      timers.delete(h);
      h.fn();
    }
  };
  return { clock, advance, timers };
}

const p = (stage: string, files: number): BackupProgress => ({ stage, files, bytes: files * 100 });

test('the first figures and each new stage go out at once; within the interval the latest is held, then sent', () => {
  const sent: BackupProgress[] = [];
  const { clock, advance, timers } = fakeClock();
  const t = new ProgressThrottle((x) => sent.push(x), 1000, clock);
  t.push(p('copying', 0));
  t.push(p('backing up files', 1));
  assert.deepEqual(
    sent.map((x) => [x.stage, x.files]),
    [
      ['copying', 0],
      ['backing up files', 1],
    ],
  );
  for (let i = 2; i <= 40; i++) t.push(p('backing up files', i));
  assert.equal(sent.length, 2, 'held within the interval');
  advance(1000);
  assert.deepEqual(sent.at(-1), p('backing up files', 40), 'the latest figures, when the interval ends');
  t.push(p('backing up files', 41));
  t.flush();
  assert.deepEqual(sent.at(-1), p('backing up files', 41), 'flush sends what is held at once');
  assert.equal(timers.size, 0);
  t.push(p('backing up files', 42));
  t.stop();
  advance(5000);
  assert.equal(sent.at(-1)?.files, 41, 'nothing goes out after stop');
});

test('figures are copied: a caller that keeps changing its object does not change what was sent', () => {
  const sent: BackupProgress[] = [];
  const live = p('backing up files', 1);
  const t = new ProgressThrottle((x) => sent.push(x), 1000, fakeClock().clock);
  t.push(live);
  live.files = 99;
  assert.equal(sent[0]?.files, 1);
});

// Issue 18, finding 5: a backup's progress stayed at "0 files, 0 B" to the end. Everything the
// archiver reported within a second of the first report was dropped, and a backup that finished
// within that second never reported its files. The last figures sent now are the real ones.
test("a host-files backup's progress ends at the files it backed up, not at its first report", async () => {
  const dir = tempDir();
  try {
    const src = join(dir.path, 'src');
    mkdirSync(src);
    for (let i = 0; i < 30; i++) writeFileSync(join(src, `f${i}`), `file ${i}\n`.repeat(100));
    const sent: BackupProgress[] = [];
    const backups = new VolumeBackups({} as Storage, join(dir.path, 'work'));
    const r = await backups.files({ paths: [src], repository: { path: join(dir.path, 'repo'), passphrase: 'pw' }, tags: [] }, (x) => sent.push(x));
    assert.equal(r.files, 30);
    assert.ok(sent.length >= 1);
    assert.deepEqual(sent.at(-1), { stage: 'backing up files', files: 30, bytes: r.bytes });
  } finally {
    dir.remove();
  }
});
