import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostPhase } from '../../../src/controller/hosts/phase.ts';

const now = new Date('2026-01-01T00:00:10Z');

test('a heartbeating host is ready, or cordoned when cordoned', () => {
  assert.equal(hostPhase({ cordoned: false, connected: true, lastHeartbeatAt: '2026-01-01T00:00:09Z' }, now, 5000), 'ready');
  assert.equal(hostPhase({ cordoned: true, connected: true, lastHeartbeatAt: '2026-01-01T00:00:09Z' }, now, 5000), 'cordoned');
});

test('a brief disconnect does not flap the host; silence past the limit makes it lost', () => {
  assert.equal(hostPhase({ cordoned: false, connected: false, lastHeartbeatAt: '2026-01-01T00:00:08Z' }, now, 5000), 'ready');
  assert.equal(hostPhase({ cordoned: false, connected: false, lastHeartbeatAt: '2026-01-01T00:00:04Z' }, now, 5000), 'lost');
  assert.equal(
    hostPhase({ cordoned: false, connected: true, lastHeartbeatAt: '2026-01-01T00:00:04Z' }, now, 5000),
    'lost',
    'an open but silent stream hides nothing',
  );
});

test('trust comes first: pending, rejected and revoked hosts are that, whatever their heartbeats', () => {
  const beating = { cordoned: false, connected: true, lastHeartbeatAt: '2026-01-01T00:00:09Z' };
  assert.equal(hostPhase({ ...beating, trust: 'pending' }, now, 5000), 'pending-approval');
  assert.equal(hostPhase({ ...beating, trust: 'rejected' }, now, 5000), 'rejected');
  assert.equal(hostPhase({ ...beating, trust: 'revoked' }, now, 5000), 'revoked');
  assert.equal(hostPhase({ ...beating, trust: 'trusted' }, now, 5000), 'ready');
});

test('a trusted host that has not connected yet is trusted; once it heartbeats it is ready', () => {
  assert.equal(hostPhase({ cordoned: false, connected: false, trust: 'trusted' }, now, 5000), 'trusted');
  assert.equal(hostPhase({ cordoned: true, connected: false, trust: 'trusted' }, now, 5000), 'trusted');
  assert.equal(hostPhase({ cordoned: false, connected: true, trust: 'trusted' }, now, 5000), 'ready');
});
