import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isLoopback, isWildcard, localAddressToward } from '../../../src/common/route-source.ts';

test('the local address toward a peer is the one the kernel would send from', async () => {
  assert.equal(await localAddressToward('127.0.0.1'), '127.0.0.1');
  assert.equal(await localAddressToward('not-an-address'), undefined);
});

test('wildcard and loopback listen addresses', () => {
  assert.ok(isWildcard('0.0.0.0') && isWildcard('::') && !isWildcard('10.0.0.1'));
  assert.ok(isLoopback('127.0.0.1') && isLoopback('127.1.2.3') && isLoopback('::1') && isLoopback('localhost'));
  assert.ok(!isLoopback('0.0.0.0') && !isLoopback('10.0.0.1'));
});
