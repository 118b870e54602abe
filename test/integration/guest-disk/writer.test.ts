/**
 * The writer outside the sandbox takes the reader's stream as hostile too: a compromised reader
 * cannot make it write outside its directory, through a link, over a name, or beyond its bounds.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { Frame } from '../../../src/guest-disk/frames.ts';
import { encodeFrame, FrameReader } from '../../../src/guest-disk/frames.ts';
import { TreeWriter } from '../../../src/guest-disk/writer.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tmp = tempDir('outrig-writer-');
after(() => tmp.remove());
const meta = { mode: 0o644, uid: 0, gid: 0, atime: '0', mtime: '0' };
let n = 0;

function writerIn(): { w: TreeWriter; dir: string } {
  const dir = join(tmp.path, `w${n++}`, 'root');
  mkdirSync(dir, { recursive: true });
  const w = new TreeWriter(dir, { maxBytes: 100, maxFileBytes: 1000, maxApparentBytes: 2000, maxEntries: 10 });
  w.write({ t: 'dir', p: [], ...meta, mode: 0o755 });
  return { w, dir };
}

const attacks: [string, (Frame | [Frame, Buffer])[]][] = [
  ['a path with ".."', [{ t: 'file', p: ['..', 'escape'], size: 1, ...meta }]],
  ['a name with "/"', [{ t: 'file', p: ['a/../../escape'], size: 1, ...meta }]],
  ['an entry in a directory it did not make', [{ t: 'file', p: ['nodir', 'x'], size: 1, ...meta }]],
  [
    'an entry under a symlink',
    [
      { t: 'symlink', p: ['ln'], target: '/tmp', uid: 0, gid: 0, atime: '0', mtime: '0' },
      { t: 'file', p: ['ln', 'escape'], size: 1, ...meta },
    ],
  ],
  [
    'a name twice',
    [
      { t: 'file', p: ['x'], size: 1, ...meta },
      { t: 'dir', p: ['x'], ...meta },
    ],
  ],
  ['data past the file', [{ t: 'file', p: ['x'], size: 1, ...meta }, [{ t: 'data', o: 0, n: 2 }, Buffer.from('ab')]]],
  ['data with no file', [[{ t: 'data', o: 0, n: 1 }, Buffer.from('a')]]],
  ['more bytes than allowed', [{ t: 'file', p: ['x'], size: 1000, ...meta }, [{ t: 'data', o: 0, n: 101 }, Buffer.alloc(101)]]],
  ['a file larger than allowed', [{ t: 'file', p: ['x'], size: 1001, ...meta }]],
  ['a hard link to a host file', [{ t: 'link', p: ['x'], to: ['..', '..', 'etc', 'passwd'] }]],
  [
    'a hard link to a directory',
    [
      { t: 'dir', p: ['d'], ...meta },
      { t: 'link', p: ['x'], to: ['d'] },
    ],
  ],
  ['a link target with a newline', [{ t: 'symlink', p: ['ln'], target: 'a\nb', uid: 0, gid: 0, atime: '0', mtime: '0' }]],
  ['a mode with file-type bits', [{ t: 'file', p: ['x'], size: 1, ...meta, mode: 0o100644 }]],
  ['an xattr outside the kept namespaces', [{ t: 'file', p: ['x'], size: 1, ...meta, xattrs: [['system.evil', '']] }]],
  ['too many entries', Array.from({ length: 11 }, (_, k) => ({ t: 'file', p: [`f${k}`], size: 0, ...meta }) as Frame)],
];

for (const [what, frames] of attacks) {
  test(`the writer stops on ${what}`, () => {
    const { w, dir } = writerIn();
    assert.throws(() => {
      for (const f of frames) {
        if (Array.isArray(f)) w.write(f[0], f[1]);
        else w.write(f);
      }
    }, /the disk reader broke its stream/);
    w.abort();
    assert.deepEqual(readdirSync(join(dir, '..')), ['root']);
    assert.equal(existsSync(join(dir, '..', 'escape')), false);
  });
}

test('a stream that ends early is refused; frames are bounded before they are parsed', () => {
  const { w } = writerIn();
  w.write({ t: 'file', p: ['x'], size: 1, ...meta });
  assert.throws(() => w.finish(), /it ended early/);
  const r = new FrameReader();
  const huge = Buffer.alloc(4);
  huge.writeUInt32LE(64 * 1024 * 1024);
  assert.throws(() => [...r.push(huge)], /sent a 67108864-byte header/);
  const split = encodeFrame({ t: 'data', o: 0, n: 3 }, Buffer.from('abc'));
  const r2 = new FrameReader();
  assert.deepEqual([...r2.push(split.subarray(0, 5))], []);
  const got = [...r2.push(split.subarray(5))];
  assert.equal(got[0]!.data!.toString(), 'abc');
});
