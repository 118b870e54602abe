/**
 * The discovery nonce table under a flood: every ack stores a nonce with the labels the stranger
 * sent, so its memory, not its count, is what must be bounded.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { TrustService } from '../../../src/controller/trust/service.ts';
import { MAX_DATAGRAM, seal, type Discover } from '../../../src/discovery/messages.ts';
import { createCsr, generateKeyPair, publicKeyB64 } from '../../../src/pki/index.ts';
import { openStore } from '../../../src/store/index.ts';
import { tempDir } from '../../helpers/tmp.ts';

const dir = tempDir();
after(() => dir.remove());

test('a flood of discovers carrying the most labels a datagram holds stays within the nonce memory budget; the newest nonce still enrolls', async () => {
  const store = await openStore({ kind: 'sqlite', path: join(dir.path, 'outrig.db') });
  const budget = 1 << 20;
  const trust = await TrustService.start({ pkiDir: join(dir.path, 'pki'), store, log: pino({ level: 'silent' }), nonceMemoryBytes: budget });
  try {
    const keys = generateKeyPair();
    const discover = (hostId: string): Discover => {
      const labels: Record<string, string> = {};
      const d: Discover = {
        type: 'discover',
        hostId,
        name: hostId,
        publicKey: publicKeyB64(keys.publicKey),
        challenge: randomBytes(16).toString('base64'),
        sentAt: Date.now(),
        policy: {},
        labels,
      };
      // As many labels as still fit in one datagram: the largest entry a stranger can make.
      for (let i = 0; seal(d, keys.privateKey).length < MAX_DATAGRAM - 400; i++)
        labels[`k${i}-${randomBytes(8).toString('hex')}`] = randomBytes(60).toString('hex');
      return d;
    };
    const flood = discover('flooder');
    const nonces: string[] = [];
    let most = 0;
    for (let i = 0; i < 3000; i++) {
      nonces.push(trust.nonces.issue({ ...flood, challenge: randomBytes(16).toString('base64') }));
      most = Math.max(most, trust.nonces.bytes);
    }
    const csr = await createCsr('flooder', keys);
    // A table pruned by count (past 50,000 entries, and only of expired ones) still held every one of these.
    await assert.rejects(trust.enroll({ hostId: 'flooder', nonce: nonces[0], csr }), /unknown nonce/, 'the oldest nonce made room');
    assert.ok(most <= budget, `the nonce table reached ${most} bytes`);
    assert.ok(most > budget / 2, 'the budget was used, not avoided');
    assert.deepEqual(await trust.enroll({ hostId: 'flooder', nonce: nonces.at(-1), csr }), { status: 'pending-approval' });
  } finally {
    await store.close();
  }
});
