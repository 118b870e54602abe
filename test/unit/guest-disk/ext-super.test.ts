import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSuperblock } from '../../../src/guest-disk/ext-super.ts';
import { bufferSource, CorruptError } from '../../../src/guest-disk/source.ts';

/** A plausible ext4 superblock on a 4 MiB partition; `edit` changes it. */
function partition(edit: (s: Buffer) => void = () => undefined): Buffer {
  const p = Buffer.alloc(4 * 1024 * 1024);
  const s = p.subarray(1024, 2048);
  s.writeUInt32LE(256, 0x00); // inodes
  s.writeUInt32LE(1024, 0x04); // blocks
  s.writeUInt32LE(0, 0x14); // first data block
  s.writeUInt32LE(2, 0x18); // 4096-byte blocks
  s.writeUInt32LE(32768, 0x20); // blocks per group
  s.writeUInt32LE(256, 0x28); // inodes per group
  s.writeUInt16LE(0xef53, 0x38);
  s.writeUInt32LE(1, 0x4c); // dynamic revision
  s.writeUInt16LE(256, 0x58); // inode size
  s.writeUInt32LE(0x4 | 0x8, 0x5c); // has_journal, ext_attr
  s.writeUInt32LE(0x2 | 0x40 | 0x80, 0x60); // filetype, extent, 64bit
  s.writeUInt32LE(0x1 | 0x2, 0x64); // sparse_super, large_file
  Buffer.from('0b0e0b0e11114222833300000000000a', 'hex').copy(s, 0x68);
  s.write('data\0junk', 0x78, 'latin1');
  s.writeUInt16LE(64, 0xfe);
  edit(s);
  return p;
}

test('a superblock: size, type by features, uuid, label up to its NUL, feature names as dumpe2fs spells them', () => {
  const sb = parseSuperblock(bufferSource(partition()));
  assert.equal(sb.blockSize, 4096);
  assert.equal(sb.type, 'ext4');
  assert.equal(sb.uuid, '0b0e0b0e-1111-4222-8333-00000000000a');
  assert.equal(sb.label.toString(), 'data');
  assert.deepEqual(sb.features.sort(), ['64bit', 'ext_attr', 'extent', 'filetype', 'has_journal', 'large_file', 'sparse_super']);
  assert.equal(parseSuperblock(bufferSource(partition((s) => s.writeUInt32LE(0x2, 0x60)))).type, 'ext3');
  assert.equal(parseSuperblock(bufferSource(partition((s) => (s.writeUInt32LE(0x2, 0x60), s.writeUInt32LE(0x8, 0x5c))))).type, 'ext2');
});

test('hostile superblocks are refused with the reason, before anything trusts them', () => {
  const cases: [string, (s: Buffer) => void, RegExp][] = [
    ['bad magic', (s) => s.writeUInt16LE(0x1234, 0x38), /bad magic/],
    ['huge blocks', (s) => s.writeUInt32LE(40, 0x18), /blocks of 2\^50 bytes/],
    ['more blocks than the partition', (s) => s.writeUInt32LE(1 << 30, 0x04), /more than the partition/],
    ['no blocks per group', (s) => s.writeUInt32LE(0, 0x20), /0 blocks per group/],
    ['inodes per group past a bitmap', (s) => s.writeUInt32LE(1 << 20, 0x28), /inodes per group/],
    ['odd inode size', (s) => s.writeUInt16LE(300, 0x58), /inodes of 300 bytes/],
    ['more inodes than groups hold', (s) => s.writeUInt32LE(100000, 0x00), /inodes in 1 groups/],
    ['an unknown incompatible feature', (s) => s.writeUInt32LE(0x2 | 0x10000, 0x60), /features this reader does not support: encrypt/],
    ['bigalloc', (s) => s.writeUInt32LE(0x200, 0x64), /bigalloc/],
    ['64bit with small descriptors', (s) => s.writeUInt16LE(32, 0xfe), /group descriptors of 32 bytes/],
  ];
  for (const [what, edit, why] of cases) {
    assert.throws(
      () => parseSuperblock(bufferSource(partition(edit))),
      (e) => e instanceof CorruptError && why.test(e.message),
      what,
    );
  }
});
