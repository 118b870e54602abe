import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchPolicy, type Capabilities } from '../../../src/discovery/policy.ts';

const caps: Capabilities = {
  cluster: 'prod',
  clusterLabels: { region: 'eu', tier: 'gold' },
  version: '1.4.2',
  features: ['mtls', 'kvm'],
  tenants: ['acme'],
  networks: ['net-a'],
};

test('an empty policy is supported by any controller', () => {
  assert.deepEqual(matchPolicy({}, caps), { supported: true, accepted: [], declined: [] });
});

test('every item present must hold; each is reported accepted or declined with a reason', () => {
  const ok = matchPolicy(
    { cluster: 'prod', clusterLabels: { region: 'eu' }, minControllerVersion: '1.4.0', features: ['kvm'], dedicatedTo: { tenant: 'acme', network: 'net-a' } },
    caps,
  );
  assert.equal(ok.supported, true);
  assert.deepEqual(ok.accepted, ['cluster=prod', 'label:region=eu', 'version>=1.4.0', 'feature:kvm', 'tenant=acme', 'network=net-a']);

  const no = matchPolicy({ cluster: 'dev', clusterLabels: { region: 'us', zone: 'a' }, features: ['kvm', 'gpu'], dedicatedTo: { tenant: 'nobody' } }, caps);
  assert.equal(no.supported, false);
  assert.deepEqual(no.accepted, ['feature:kvm']);
  assert.deepEqual(no.declined, [
    "cluster=dev: this controller's cluster is 'prod'",
    'label:region=us: the cluster has region=eu',
    'label:zone=a: the cluster has no such label',
    "feature:gpu: not among this controller's features (mtls, kvm)",
    'tenant=nobody: no such tenant here',
  ]);
});

test('versions compare numerically, part by part', () => {
  const v = (have: string, want: string) => matchPolicy({ minControllerVersion: want }, { ...caps, version: have }).supported;
  assert.equal(v('1.10.0', '1.9.9'), true);
  assert.equal(v('1.4.2', '1.4.2'), true);
  assert.equal(v('1.4.2', '1.4.3'), false);
  assert.equal(v('2.0.0', '10.0.0'), false);
  assert.equal(v('0.1.0-dev', '0.1.0'), true);
});
