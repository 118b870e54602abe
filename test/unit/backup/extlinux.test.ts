import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filesLoadedBy } from '../../../src/backup/extlinux.ts';

test('the files an extlinux configuration loads: kernels, initrds (lists too), modules; relative to its directory', () => {
  const config = [
    'UI menu.c32',
    'DEFAULT linux',
    'LABEL linux',
    '  LINUX /boot/vmlinuz',
    '  INITRD /boot/initrd.img,/boot/extra.img',
    '  APPEND root=UUID=x console=ttyS0',
    'LABEL old',
    '  kernel ../vmlinuz.old',
    '  append initrd=/boot/initrd.old quiet',
    'LABEL dtb',
    '  FDT dtbs/board.dtb',
    '# LINUX /commented/out',
    '',
  ].join('\n');
  assert.deepEqual(filesLoadedBy(config, '/boot/syslinux').sort(), [
    '/boot/extra.img',
    '/boot/initrd.img',
    '/boot/initrd.old',
    '/boot/syslinux/dtbs/board.dtb',
    '/boot/syslinux/menu.c32',
    '/boot/vmlinuz',
    '/boot/vmlinuz.old',
  ]);
  assert.deepEqual(filesLoadedBy('PROMPT 0\nTIMEOUT 0\n', '/boot/syslinux'), []);
});
