import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bootSector, probeKvm } from '../../src/hypervisor/kvm-probe.ts';
import { tempDir } from '../helpers/tmp.ts';

test('the boot sector is a valid MBR boot record', () => {
  const b = bootSector();
  assert.equal(b.length, 512);
  assert.equal(b[510], 0x55);
  assert.equal(b[511], 0xaa);
});

test('the probe guests really boot: under TCG the probe says usable', async () => {
  // This proves the probe itself works, so an "unusable" answer under KVM is about KVM, not the probe.
  const dir = tempDir();
  try {
    const r = await probeKvm({ cacheFile: join(dir.path, 'tcg.json'), accel: 'tcg', fresh: true });
    assert.equal(r.usable, true, r.reason);
    assert.match(r.reason, /a Linux guest booted under TCG/);
  } finally {
    dir.remove();
  }
});

test('the KVM probe answers with a reason and caches it for this boot', async () => {
  const dir = tempDir();
  try {
    const cache = join(dir.path, 'kvm.json');
    const r = await probeKvm({ cacheFile: cache });
    assert.equal(typeof r.usable, 'boolean');
    assert.ok(r.reason.length > 10, r.reason);
    assert.ok(existsSync(cache));
    const again = await probeKvm({ cacheFile: cache });
    assert.equal(again.checkedAt, r.checkedAt, 'second call served from the cache');
  } finally {
    dir.remove();
  }
});

test('no /dev/kvm access is reported as such', async () => {
  const dir = tempDir();
  try {
    const r = await probeKvm({ cacheFile: join(dir.path, 'k.json'), devKvm: join(dir.path, 'no-such-kvm'), fresh: true });
    assert.equal(r.usable, false);
    assert.match(r.reason, /no-such-kvm is not usable: ENOENT/);
  } finally {
    dir.remove();
  }
});
