import assert from 'node:assert/strict';
import { test } from 'node:test';
import { selectCertificates } from '../../../src/controller/trust/certificates.ts';
import { DEFAULT_PENDING_LIMITS, PendingHosts } from '../../../src/controller/trust/pending-hosts.ts';
import type { Certificate } from '../../../src/model/trust.ts';

test('waiting hosts: a cap, and requests that expire after the limit', () => {
  assert.deepEqual(DEFAULT_PENDING_LIMITS, { max: 200, ttlMs: 3_600_000 });
  const p = new PendingHosts({ max: 2, ttlMs: 1000 });
  p.add('a', 0);
  assert.equal(p.full(), false);
  p.add('b', 500);
  assert.equal(p.full(), true);
  p.add('b', 500);
  assert.equal(p.size, 2, 'a host asking again is still one');
  assert.deepEqual(p.expired(999), []);
  assert.deepEqual(p.expired(1000), ['a']);
  assert.deepEqual(p.expired(1500), ['a', 'b']);
  p.remove('a');
  assert.equal(p.full(), false);
  assert.equal(p.has('b'), true);
});

const cert = (serial: string, profile: string, cn: string): Certificate => ({
  id: `c-${serial}`,
  name: serial,
  labels: {},
  annotations: {},
  spec: { profile, subject: `CN=${cn}`, fingerprint: '', notBefore: '', notAfter: '' },
  status: { phase: 'valid', conditions: [] },
  createdAt: '',
  updatedAt: '',
  generation: 1,
});

test('an operator names certificates by serial or by name, and an ambiguous name is refused', () => {
  const all = [
    cert('7a01', 'operator', 'alice'),
    cert('7a02', 'operator', 'alice'),
    cert('7b01', 'server', 'sw1'),
    cert('7b02', 'operator', 'sw1'),
    cert('7c01', 'operator', 'abc'),
  ];
  const serials = (s: ReturnType<typeof selectCertificates>) => ('certs' in s ? s.certs.map((c) => c.name) : s.code);
  assert.deepEqual(serials(selectCertificates(all, '007A01')), ['7a01'], 'serials compare without case or leading zeros');
  assert.deepEqual(serials(selectCertificates(all, 'c-7a02')), ['7a02'], 'a record id works too');
  assert.deepEqual(serials(selectCertificates(all, 'alice')), ['7a01', '7a02'], 'a name means every certificate issued to it');
  assert.deepEqual(serials(selectCertificates(all, 'sw1')), 'ambiguous_ref', 'one name, two profiles');
  assert.deepEqual(serials(selectCertificates(all, 'sw1', 'server')), ['7b01']);
  assert.deepEqual(serials(selectCertificates(all, 'alice', 'server')), 'not_found');
  assert.deepEqual(serials(selectCertificates(all, 'nobody')), 'not_found');
  assert.deepEqual(serials(selectCertificates([...all, cert('abc', 'host', 'h-x')], 'abc')), 'ambiguous_ref', 'a serial that is also a name');
});
