import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dedicatedHosts, dedicationCondition, describeForeign, foreignInstances, mayPlace } from '../../../src/controller/host-clusters/plan.ts';

const inst = (name: string, tenant: string, hostId?: string) => ({ name, spec: { tenant }, status: { hostId, hostName: hostId?.replace('h-', '') } });
const instances = [
  inst('a1', 'acme', 'h-1'),
  inst('web', 'default', 'h-1'),
  inst('db', 'other', 'h-2'),
  inst('waiting', 'default'),
  inst('x', 'default', 'h-3'),
];
const dcA = { name: 'dc-a', spec: { tenant: 'acme', hosts: ['h-1', 'h-2'] } };

test('hosts map to the tenant of their cluster; placement may use a host only for that tenant', () => {
  const d = dedicatedHosts([dcA, { name: 'dc-x', spec: { tenant: 'other', hosts: ['h-5'] } }]);
  assert.deepEqual(Object.fromEntries(d), {
    'h-1': { tenant: 'acme', cluster: 'dc-a' },
    'h-2': { tenant: 'acme', cluster: 'dc-a' },
    'h-5': { tenant: 'other', cluster: 'dc-x' },
  });
  assert.equal(mayPlace('acme', d.get('h-1')), true);
  assert.equal(mayPlace('default', d.get('h-1')), false);
  assert.equal(mayPlace('default', d.get('h-9')), true, 'a shared host takes anyone');
});

test("other tenants' instances on a set of hosts are named, placed ones only, running or not", () => {
  const found = foreignInstances(['h-1', 'h-2'], 'acme', instances);
  assert.deepEqual(found, [
    { name: 'web', tenant: 'default', hostName: '1' },
    { name: 'db', tenant: 'other', hostName: '2' },
  ]);
  assert.equal(describeForeign(found), 'web (tenant default) on 1, db (tenant other) on 2');
  assert.equal(describeForeign(found, 1), 'web (tenant default) on 1, and 1 more');
  assert.deepEqual(foreignInstances(['h-1'], 'acme', [inst('a1', 'acme', 'h-1')]), []);
});

test("the cluster's Dedicated condition is False, naming them, while another tenant's instance sits on its hosts", () => {
  const bad = dedicationCondition(dcA, instances);
  assert.deepEqual([bad.type, bad.status, bad.reason], ['Dedicated', 'False', 'ForeignInstances']);
  assert.match(bad.message, /web \(tenant default\) on 1, db \(tenant other\) on 2/);
  const good = dedicationCondition(dcA, [inst('a1', 'acme', 'h-1'), inst('x', 'default', 'h-3')]);
  assert.deepEqual([good.status, good.reason], ['True', 'OnlyTenantInstances']);
});
