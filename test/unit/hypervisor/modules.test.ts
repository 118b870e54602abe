import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadOrder, moduleNameOf, parseModulesBuiltin, parseModulesDep } from '../../../src/hypervisor/guest-image/modules.ts';

// Captured from Debian 12's 6.1 cloud kernel (modules.dep), trimmed to the virtio family.
const DEP = `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/acpi/button.ko:
`;

test('load order puts every dependency before its user', () => {
  const idx = parseModulesDep(DEP);
  const order = loadOrder(idx, ['virtio_pci', 'virtio_net', 'button']);
  const pos = (m: string) => order.indexOf(m);
  for (const [mod, deps] of idx.deps) {
    if (pos(mod) < 0) continue;
    for (const d of deps) assert.ok(pos(d) >= 0 && pos(d) < pos(mod), `${d} before ${mod} in ${order.join(' ')}`);
  }
  assert.deepEqual(
    new Set(order),
    new Set(['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net', 'button']),
  );
});

test('built-in modules are not loaded, unknown ones are an error', () => {
  const idx = parseModulesDep(DEP);
  assert.ok(!loadOrder(idx, ['virtio_net'], parseModulesBuiltin('kernel/drivers/virtio/virtio.ko\n')).includes('virtio'));
  assert.throws(() => loadOrder(idx, ['nope']), /nope not found/);
});

test('module names normalise dashes and compression suffixes', () => {
  assert.equal(moduleNameOf('kernel/x/virtio-net.ko.xz'), 'virtio_net');
});

test('a dependency cycle is reported, not looped on', () => {
  const idx = parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n');
  assert.throws(() => loadOrder(idx, ['a']), /cycle/);
});
