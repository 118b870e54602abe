import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { buildCpio, parseCpio } from '../../../src/hypervisor/guest-image/cpio.ts';

test('cpio round-trips names, modes and contents', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9_.-]{0,20}$/), { minLength: 1, maxLength: 8 }),
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 8, maxLength: 8 }),
      (names, datas) => {
        const entries = names.map((n, i) => ({ type: 'file' as const, path: `d/${n}`, data: Buffer.from(datas[i]!), mode: 0o640 }));
        const parsed = parseCpio(buildCpio([{ type: 'dir', path: 'd' }, ...entries]));
        assert.equal(parsed.length, entries.length + 1);
        for (const e of entries) {
          const p = parsed.find((x) => x.path === e.path);
          assert.ok(p, e.path);
          assert.equal(p.mode, 0o100640);
          assert.deepEqual(Buffer.from(p.data), e.data);
        }
      },
    ),
  );
});

test('cpio rejects paths that climb out of the archive', () => {
  assert.throws(() => buildCpio([{ type: 'file', path: '../etc/passwd', data: Buffer.alloc(1) }]), /invalid cpio path/);
});

test('an independent cpio (busybox, as in the guest) extracts what we write', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cpio-'));
  try {
    const archive = buildCpio([
      { type: 'dir', path: 'bin' },
      { type: 'file', path: 'bin/hello', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
      { type: 'symlink', path: 'hi', target: 'bin/hello' },
    ]);
    writeFileSync(join(dir, 'a.cpio'), archive);
    const r = spawnSync('sh', ['-c', `cd ${dir} && mkdir x && cd x && busybox cpio -id < ../a.cpio`]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.equal(readFileSync(join(dir, 'x/bin/hello'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(statSync(join(dir, 'x/bin/hello')).mode & 0o777, 0o755);
    assert.ok(lstatSync(join(dir, 'x/hi')).isSymbolicLink());
    assert.equal(readlinkSync(join(dir, 'x/hi')), 'bin/hello');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
