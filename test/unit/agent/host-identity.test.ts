import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { derivedHostId, loadHostId } from '../../../src/agent/host-identity.ts';
import { tempDir } from '../../helpers/tmp.ts';

test('the host id derives from the machine id and SMBIOS UUID, and is kept once made', async () => {
  const dir = tempDir();
  try {
    const mid = join(dir.path, 'machine-id');
    const uuid = join(dir.path, 'uuid');
    writeFileSync(mid, '3d1219c7c4c5404aaa1f6d2a48adfda4\n');
    writeFileSync(uuid, '4C4C4544-0042-3510-8052-B4C04F4B4E32\n');
    const src = { machineId: mid, smbiosUuid: uuid };
    const a = derivedHostId('/var/lib/outrig/agent', src);
    assert.match(a!, /^h-[0-9a-f]{16}$/);
    assert.equal(derivedHostId('/var/lib/outrig/agent', src), a, 'the same machine gives the same id');
    assert.notEqual(derivedHostId('/var/lib/outrig/agent2', src), a, 'a second agent on the machine differs');
    writeFileSync(uuid, '4C4C4544-0042-3510-8052-B4C04F4B4E33\n');
    assert.notEqual(derivedHostId('/var/lib/outrig/agent', src), a, 'another board differs');
    assert.equal(derivedHostId('/x', { machineId: join(dir.path, 'none'), smbiosUuid: join(dir.path, 'none') }), undefined);

    const p = join(dir.path, 'agent', 'host-id');
    const first = await loadHostId(p);
    writeFileSync(join(dir.path, 'agent', 'host-id'), 'h-kept\n');
    assert.equal(await loadHostId(p), 'h-kept', 'a stored id is never re-derived');
    assert.match(first, /^h-[0-9a-f]{16}$/);
  } finally {
    dir.remove();
  }
});
