/** Filesystems other than ext, named by their magic numbers (backed up raw; the name is for people). Pure. */
import type { Source } from './source.ts';

const MAGICS: { type: string; at: number; magic: string }[] = [
  { type: 'xfs', at: 0, magic: 'XFSB' },
  { type: 'btrfs', at: 0x10040, magic: '_BHRfS_M' },
  { type: 'vfat', at: 0x52, magic: 'FAT32   ' },
  { type: 'vfat', at: 0x36, magic: 'FAT1' },
  { type: 'ntfs', at: 3, magic: 'NTFS    ' },
  { type: 'swap', at: 4096 - 10, magic: 'SWAPSPACE2' },
  { type: 'LVM2_member', at: 512 + 24, magic: 'LVM2 001' },
  { type: 'crypto_LUKS', at: 0, magic: 'LUKS\xba\xbe' },
];

export function otherFilesystem(src: Source): string | undefined {
  for (const m of MAGICS) {
    if (m.at + m.magic.length > src.size) continue;
    if (src.read(m.at, m.magic.length).toString('latin1') === m.magic) return m.type;
  }
  return undefined;
}
