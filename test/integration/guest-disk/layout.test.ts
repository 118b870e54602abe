/**
 * The sandboxed reader against the tools it replaces, on disks this test makes (trusted input):
 * the partition table as sfdisk --json reports it, and each ext filesystem's identity as
 * dumpe2fs -h does, for MBR with logical partitions, GPT with names and attributes, ext2/3/4.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readLayout } from '../../../src/guest-disk/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tmp = tempDir('outrig-layout-reader-');
after(() => tmp.remove());
const SIZE = 96 * 1024 * 1024;

function disk(name: string, script: string): string {
  const path = join(tmp.path, name);
  writeFileSync(path, '');
  truncateSync(path, SIZE);
  execFileSync('sfdisk', ['-q', path], { input: script });
  return path;
}

/** sfdisk's own report, in the reader's shape. */
function sfdisk(path: string): unknown {
  const t = JSON.parse(execFileSync('sfdisk', ['--json', path]).toString()).partitiontable;
  return {
    table: { label: t.label, id: t.id, sectorSize: t.sectorsize, ...(t.firstlba !== undefined ? { firstLba: t.firstlba, lastLba: t.lastlba } : {}) },
    partitions: t.partitions.map(({ node, ...p }: { node: string }) => ({ index: Number(/(\d+)$/.exec(node)![1]), ...p })),
  };
}

function dumpe2fs(path: string, offset: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of execFileSync('dumpe2fs', ['-h', `${path}?offset=${offset}`], { stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

test('partition tables read as sfdisk reads them: MBR with logical partitions, GPT with names, attributes and a BIOS-boot partition', async () => {
  const mbr = disk(
    'mbr.raw',
    'label: dos\nlabel-id: 0x0badcafe\nstart=2048, size=20480, type=83, bootable\nstart=22528, size=100000, type=5\nstart=24576, size=20480, type=83\nstart=47104, size=20480, type=82\n',
  );
  const g = disk(
    'gpt.raw',
    'label: gpt\nlabel-id: 5A1C0F00-0000-4000-8000-000000000001\nstart=2048, size=2048, type=21686148-6449-6E6F-744E-656564454649, name="bios"\nstart=4096, size=81920, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=5A1C0F00-0000-4000-8000-0000000000A2, name="root disk", attrs="RequiredPartition LegacyBIOSBootable GUID:49,63"\n',
  );
  for (const path of [mbr, g]) {
    const { layout, warnings } = await readLayout(path, SIZE);
    assert.deepEqual({ table: layout.table, partitions: layout.partitions }, sfdisk(path));
    assert.deepEqual(warnings, []);
  }
});

test('ext2, ext3 and ext4 identities read as dumpe2fs reads them; other filesystems named by type', async () => {
  const path = disk(
    'fs.raw',
    'label: dos\nstart=2048, size=40960, type=83\nstart=43008, size=40960, type=83\nstart=83968, size=40960, type=83\nstart=124928, size=20480, type=82\n',
  );
  const parts = [2048, 43008, 83968].map((s) => s * 512);
  execFileSync('mkfs.ext2', ['-q', '-F', '-L', 'two', '-b', '1024', '-E', `offset=${parts[0]}`, path, '20M']);
  execFileSync('mkfs.ext3', ['-q', '-F', '-L', 'three', '-I', '128', '-E', `offset=${parts[1]}`, path, '20M']);
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'four', '-N', '3000', '-O', 'inline_data', '-E', `offset=${parts[2]}`, path, '20M']);
  const swap = join(tmp.path, 'swap.raw');
  writeFileSync(swap, '');
  truncateSync(swap, 10 * 1024 * 1024);
  execFileSync('mkswap', ['-q', swap], { stdio: 'ignore' });
  execFileSync('dd', [`if=${swap}`, `of=${path}`, 'bs=512', `seek=${124928}`, 'conv=notrunc,sparse', 'status=none']);
  const { layout } = await readLayout(path, SIZE);
  assert.deepEqual(
    layout.filesystems.map((f) => [f.partition, f.type]),
    [
      [1, 'ext2'],
      [2, 'ext3'],
      [3, 'ext4'],
      [4, 'swap'],
    ],
  );
  for (const [k, offset] of parts.entries()) {
    const d = dumpe2fs(path, offset);
    const f = layout.filesystems[k]!;
    assert.equal(f.uuid, d['Filesystem UUID']);
    assert.equal(f.label, d['Filesystem volume name']);
    assert.equal(f.blockSize, Number(d['Block size']));
    assert.equal(f.inodeSize, Number(d['Inode size']));
    assert.equal(f.inodesCount, Number(d['Inode count']));
    assert.deepEqual([...f.features!].sort(), d['Filesystem features']!.split(/\s+/).sort());
  }
});
