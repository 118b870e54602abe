import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { missingFeaturesNotice, REQUIREMENT_SETS, VOLUME_BACKUP_REQUIREMENTS } from '../../../src/common/system-requirements.ts';

test('npm start installs what backups through the controller need (nbdcopy), not only the VM packages', () => {
  const start = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts.start!;
  const sets = /ensure-system\.ts ([^&]+)&&/.exec(start)?.[1]?.trim().split(/\s+/) ?? [];
  const pkgs = new Set(sets.flatMap((n) => REQUIREMENT_SETS[n] ?? []).map((r) => r.pkg));
  for (const r of VOLUME_BACKUP_REQUIREMENTS) assert.ok(pkgs.has(r.pkg), `npm start does not install ${r.pkg} (${r.what})`);
  for (const p of ['libnbd-bin', 'dnsmasq-base', 'nftables', 'qemu-system-x86']) assert.ok(pkgs.has(p), p);
});

test('outrig up names the features a missing package breaks, and one command that installs them all', () => {
  const gone = (pkg: string, what: string) => ({ pkg, what, present: () => false });
  const here = { pkg: 'here', what: 'here', present: () => true };
  assert.equal(missingFeaturesNotice([{ feature: 'x', reqs: [here] }]), undefined);
  const n = missingFeaturesNotice([
    { feature: 'backups of instances and volumes', reqs: [gone('libnbd-bin', 'nbdcopy'), here] },
    { feature: 'DHCP on networks', reqs: [gone('dnsmasq-base', 'dnsmasq')] },
    { feature: 'networks', reqs: [here] },
  ]);
  assert.ok(n);
  assert.match(n, /backups of instances and volumes: nbdcopy \(libnbd-bin\)/);
  assert.match(n, /DHCP on networks: dnsmasq \(dnsmasq-base\)/);
  assert.doesNotMatch(n, /- networks/);
  assert.match(n, /apt-get install -y --no-install-recommends libnbd-bin dnsmasq-base'/);
});
