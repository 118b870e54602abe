/**
 * Networks through the API against a real controller and agent (in this process): bad input is
 * refused with a reason that names the problem, and a refused request leaves networks, segment
 * claims, address claims and instances exactly as they were.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ApiClient } from '../../src/cli/client.ts';
import type { RunningController } from '../../src/server/index.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { Network } from '../../src/model/network.ts';
import { startInProcess, type InProcessCluster } from '../helpers/in-process.ts';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Host } from '../../src/model/host.ts';
import type { HostCluster } from '../../src/model/host-cluster.ts';
import { profileOf, vnetSegments, x509 } from '../../src/pki/index.ts';
import { formatIpv4 } from '../../src/network/index.ts';
import fc from '../helpers/fast-check.ts';
import { apiSend, tlsFetch } from '../helpers/https.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('networks API', () => {
  let env: InProcessCluster;
  let ctl: RunningController;
  let api: ApiClient;

  before(async () => {
    env = await startInProcess('net-api-host');
    ({ ctl, api } = env);
    await api.post('/v1/tenants', { name: 'other' });
  });
  after(() => env?.close());

  const send = (method: string, path: string, body?: unknown) => apiSend<Network & Instance>(ctl, method, path, body);

  /** Everything a refused request must leave alone. */
  async function state() {
    return {
      networks: (await api.get<{ items: Network[] }>('/v1/networks')).items.map((n) => [n.name, n.spec.segment, n.status.phase]),
      instances: (await api.get<{ items: Instance[] }>('/v1/instances')).items.map((i) => i.name),
      segments: [...(await ctl.store.claims.segments()).entries()],
      addresses: await ctl.store.claims.addresses(),
    };
  }

  test('networks are created with the lowest free segment, or the one asked for', async () => {
    const a = await send('POST', '/v1/networks', { name: 'net-a', subnet: '10.10.0.0/24', gateway: '10.10.0.1' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(a.body.spec?.segment, 100);
    const b = await send('POST', '/v1/networks', { name: 'net-b', subnet: '10.20.0.0/29', segment: 5000 });
    assert.equal(b.body.spec?.segment, 5000);
    // Another tenant may use the same subnet: its network is isolated from net-a.
    const o = await send('POST', '/v1/networks', { name: 'other-a', tenant: 'other', subnet: '10.10.0.0/24' });
    assert.equal(o.status, 201, JSON.stringify(o.body));
    assert.equal(o.body.spec?.segment, 101);
  });

  const bad: [string, unknown, number, string, RegExp][] = [
    [
      'an overlapping subnet',
      { name: 'x1', subnet: '10.10.0.0/16' },
      409,
      'subnet_overlap',
      /10\.10\.0\.0\/16 overlaps network net-a's 10\.10\.0\.0\/24 \(tenant default\)/,
    ],
    ['a subnet inside another', { name: 'x2', subnet: '10.10.0.128/25' }, 409, 'subnet_overlap', /overlaps network net-a's/],
    ['a subnet too small for guests', { name: 'x2b', subnet: '10.20.0.0/30' }, 400, 'invalid_request', /prefix \/30 is out of range/],
    ['host bits in the subnet', { name: 'x3', subnet: '10.30.0.7/24' }, 400, 'invalid_request', /host bits set; the subnet is 10\.30\.0\.0\/24/],
    ['a malformed subnet', { name: 'x4', subnet: '10.30.0.0-24' }, 400, 'invalid_request', /not an IPv4 subnet in CIDR form/],
    [
      'a gateway outside the subnet',
      { name: 'x5', subnet: '10.30.0.0/24', gateway: '10.31.0.1' },
      400,
      'invalid_request',
      /gateway: 10\.31\.0\.1 is not a host address of 10\.30\.0\.0\/24/,
    ],
    ['the broadcast address as gateway', { name: 'x6', subnet: '10.30.0.0/24', gateway: '10.30.0.255' }, 400, 'invalid_request', /is not a host address/],
    ['a segment id out of range', { name: 'x7', subnet: '10.30.0.0/24', segment: 16777216 }, 400, 'invalid_request', /segment: must be at most 16777215/],
    ['segment 0', { name: 'x8', subnet: '10.30.0.0/24', segment: 0 }, 400, 'invalid_request', /segment: must be at least 1/],
    ['a segment in use', { name: 'x9', subnet: '10.30.0.0/24', segment: 5000 }, 409, 'segment_in_use', /segment 5000 is in use by network net-b/],
    ['a duplicate name', { name: 'net-a', subnet: '10.40.0.0/24' }, 409, 'conflict', /network 'net-a' already exists/],
    ['an unknown tenant', { name: 'x10', subnet: '10.40.0.0/24', tenant: 'nobody' }, 422, 'unknown_tenant', /tenant 'nobody' does not exist/],
    ['an unknown field', { name: 'x11', subnet: '10.40.0.0/24', vlan: 7 }, 400, 'invalid_request', /unknown field 'vlan'/],
  ];
  for (const [what, body, status, code, message] of bad) {
    test(`refuses ${what} with ${status} ${code} and changes nothing`, async () => {
      const before = await state();
      const r = await send('POST', '/v1/networks', body);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error?.code, code);
      assert.match(r.body.error?.message ?? '', message);
      assert.deepEqual(await state(), before);
    });
  }

  const inst = { image: 'test', vcpus: 1, memoryMiB: 128, start: false };

  test('instances get addresses lowest first (the gateway kept), with MACs made from them', async () => {
    const i1 = await send('POST', '/v1/instances', { ...inst, name: 'i1', networks: ['net-a', 'net-b'] });
    assert.equal(i1.status, 201, JSON.stringify(i1.body));
    assert.deepEqual(
      i1.body.spec?.nics?.map((n) => [n.networkName, n.address, n.prefix, n.mac, n.gateway]),
      [
        ['net-a', '10.10.0.2', 24, '0a:58:0a:0a:00:02', '10.10.0.1'],
        ['net-b', '10.20.0.1', 29, '0a:58:0a:14:00:01', undefined],
      ],
    );
  });

  const badInstances: [string, unknown, number, string, RegExp][] = [
    ['an unknown network', { ...inst, name: 'j1', networks: ['net-a', 'nosuch'] }, 422, 'unknown_network', /network 'nosuch' does not exist/],
    ["another tenant's network", { ...inst, name: 'j2', networks: ['other-a'] }, 422, 'tenant_mismatch', /network 'other-a' belongs to tenant other/],
    ['a network named twice', { ...inst, name: 'j3', networks: ['net-a', 'net-a'] }, 400, 'invalid_request', /networks/],
    ['a duplicate instance name', { ...inst, name: 'i1', networks: ['net-a'] }, 409, 'conflict', /'i1' already exists/],
  ];
  for (const [what, body, status, code, message] of badInstances) {
    test(`an instance with ${what} is refused (${status} ${code}); no address is held for it`, async () => {
      const before = await state();
      const r = await send('POST', '/v1/instances', body);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error?.code, code);
      assert.match(r.body.error?.message ?? '', message);
      assert.deepEqual(await state(), before);
    });
  }

  test('a network shows who holds its addresses', async () => {
    const n = (await send('GET', '/v1/networks/net-a')).body as unknown as {
      instances: { name: string; address: string; mac: string }[];
      addresses: { used: number };
    };
    assert.deepEqual(
      n.instances.map((i) => [i.name, i.address, i.mac]),
      [['i1', '10.10.0.2', '0a:58:0a:0a:00:02']],
    );
    assert.equal(n.addresses.used, 1);
  });

  test('a full network refuses the next instance and keeps the addresses already claimed on other networks free', async () => {
    // net-b is a /29: .1-.6; i1 holds .1.
    for (let k = 2; k <= 6; k++) assert.equal((await send('POST', '/v1/instances', { ...inst, name: `f${k}`, networks: ['net-b'] })).status, 201);
    const before = await state();
    const r = await send('POST', '/v1/instances', { ...inst, name: 'f7', networks: ['net-a', 'net-b'] });
    assert.equal(r.status, 409);
    assert.equal(r.body.error?.code, 'network_full');
    assert.match(r.body.error?.message ?? '', /network 'net-b' \(10\.20\.0\.0\/29\) has no free address/);
    assert.deepEqual(await state(), before, 'the net-a address claimed first was given back');
  });

  test('a network with instances on it cannot be deleted; without them it goes, and its segment is free again', async () => {
    const before = await state();
    const r = await send('DELETE', '/v1/networks/net-b');
    assert.equal(r.status, 409);
    assert.equal(r.body.error?.code, 'in_use');
    assert.match(r.body.error?.message ?? '', /network net-b has instances on it: i1, f2, f3, f4, f5, f6; delete them first/);
    assert.deepEqual(await state(), before);
    const spare = await send('POST', '/v1/networks', { name: 'spare', subnet: '10.50.0.0/24', segment: 777 });
    assert.equal(spare.status, 201);
    assert.equal((await send('DELETE', '/v1/networks/spare')).status, 202);
    const gone = await send('GET', '/v1/networks/spare');
    assert.equal(gone.status, 404);
    assert.equal((await send('POST', '/v1/networks', { name: 'spare2', subnet: '10.50.0.0/24', segment: 777 })).status, 201);
  });

  test("DHCP on: the servers' address is the network's own claim, taken before any guest's and given back with the network", async () => {
    const r = await send('POST', '/v1/networks', { name: 'dh', subnet: '10.60.0.0/29', gateway: '10.60.0.1', dhcp: true });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(r.body.spec?.dhcp, { server: '10.60.0.2' });
    const claims = async () => (await ctl.store.claims.addresses()).filter((c) => c.networkId === r.body.id);
    assert.deepEqual(
      (await claims()).map((c) => [formatIpv4(c.address), c.instanceId]),
      [['10.60.0.2', r.body.id]],
    );
    const g = await send('POST', '/v1/instances', { ...inst, name: 'dh1', networks: ['dh'] });
    assert.equal(g.body.spec?.nics?.[0]?.address, '10.60.0.3', 'the first guest gets the next address');
    const view = (await send('GET', '/v1/networks/dh')).body as unknown as { addresses: { used: number; free: number } };
    assert.deepEqual(view.addresses, { used: 2, free: 3 });
    // Its own claim is no instance: with the guest gone, the network can go, and the claim with it.
    assert.match((await send('DELETE', '/v1/networks/dh')).body.error?.message ?? '', /has instances on it: dh1/);
    assert.equal((await send('DELETE', '/v1/instances/dh1')).status, 202);
    await waitUntil('dh1 gone', async () => (await send('GET', '/v1/instances/dh1')).status === 404, 30_000, 100);
    assert.equal((await send('DELETE', '/v1/networks/dh')).status, 202);
    await waitUntil('dh gone', async () => (await send('GET', '/v1/networks/dh')).status === 404, 30_000, 100);
    assert.deepEqual(await claims(), []);
    // dhcp is a yes/no: anything else is refused and nothing is made.
    const before = await state();
    const bad = await send('POST', '/v1/networks', { name: 'dh-bad', subnet: '10.61.0.0/29', dhcp: 'yes' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error?.message ?? '', /dhcp/);
    assert.deepEqual(await state(), before);
  });

  test('deleting an instance gives its addresses back', async () => {
    const f6 = await api.get<Instance>('/v1/instances/f6');
    assert.equal((await send('DELETE', '/v1/instances/f6')).status, 202);
    await waitUntil('f6 and its address gone', async () => !(await ctl.store.claims.addresses()).some((c) => c.instanceId === f6.id), 30_000, 100);
    const r = await send('POST', '/v1/instances', { ...inst, name: 'g1', networks: ['net-b'] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.spec?.nics?.[0]?.address, '10.20.0.6');
  });

  test('concurrent instance creates and deletes through the API never share an address (random rounds)', async () => {
    assert.equal((await send('POST', '/v1/networks', { name: 'busy', subnet: '10.70.0.0/27', gateway: '10.70.0.1' })).status, 201);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.boolean(), { minLength: 4, maxLength: 16 }), async (ops) => {
        const live = (await api.get<{ items: Instance[] }>('/v1/instances')).items.filter((i) => i.name.startsWith('busy-'));
        let n = 0;
        // Creates (true) and deletes of live instances (false), all at once.
        await Promise.all(
          ops.map(async (create) => {
            if (!create && live.length) return send('DELETE', `/v1/instances/${live.pop()!.name}`);
            const r = await send('POST', '/v1/instances', { ...inst, name: `busy-${Date.now().toString(36)}-${n++}`, networks: ['busy'] });
            // A full network, or a host without room for it now, is an answer too; anything else is not.
            if (r.status !== 201) assert.ok(['network_full', 'no_room'].includes(r.body.error?.code ?? ''), JSON.stringify(r.body));
          }),
        );
        const busyId = (await api.get<Network>('/v1/networks/busy')).id;
        // Instances first: a deletion still under way releases the claims and then removes the
        // record, so claims read after the instances can only have lost holders, never gained them.
        const all = (await api.get<{ items: Instance[] }>('/v1/instances')).items;
        const claims = (await ctl.store.claims.addresses()).filter((c) => c.networkId === busyId);
        assert.equal(new Set(claims.map((c) => c.address)).size, claims.length, 'an address is claimed twice');
        const holders = new Set(claims.map((c) => c.instanceId));
        assert.equal(holders.size, claims.length, 'an instance holds two addresses on one network');
        // No claim outlives its instance; every instance not being deleted holds exactly the address its spec names.
        for (const c of claims)
          assert.ok(
            all.some((i) => i.id === c.instanceId),
            `a claim of a deleted instance ${c.instanceId} stayed`,
          );
        for (const i of all.filter((x) => x.status.phase !== 'deleting' && x.spec.nics?.some((nic) => nic.networkName === 'busy'))) {
          const mine = claims.filter((c) => c.instanceId === i.id).map((c) => formatIpv4(c.address));
          assert.deepEqual(mine, [i.spec.nics!.find((nic) => nic.networkName === 'busy')!.address]);
        }
      }),
      { numRuns: 8 },
    );
  });

  test('host clusters: unknown or foreign networks and unknown tenants are refused; nothing is made', async () => {
    const before = (await api.get<{ items: HostCluster[] }>('/v1/host-clusters')).items.length;
    const cases: [unknown, number, string, RegExp][] = [
      [{ name: 'dc-x', networks: ['nosuch'] }, 422, 'unknown_network', /network 'nosuch' does not exist/],
      [{ name: 'dc-x', networks: ['other-a'] }, 422, 'tenant_mismatch', /network 'other-a' belongs to tenant other, not default/],
      [{ name: 'dc-x', tenant: 'nobody', networks: ['net-a'] }, 422, 'unknown_tenant', /tenant 'nobody' does not exist/],
      [{ name: 'dc-x', networks: [] }, 400, 'invalid_request', /networks/],
    ];
    for (const [body, status, code, message] of cases) {
      const r = await send('POST', '/v1/host-clusters', body);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.error?.code, code);
      assert.match(r.body.error?.message ?? '', message);
    }
    assert.equal((await api.get<{ items: HostCluster[] }>('/v1/host-clusters')).items.length, before);
  });

  test("a host dedicated to a cluster gets a principal certificate for its own key naming the cluster's networks", async () => {
    assert.equal((await send('POST', '/v1/host-clusters', { name: 'dc1', networks: ['net-a', 'net-b'] })).status, 201);
    assert.equal((await send('POST', '/v1/host-clusters', { name: 'dc2', networks: ['net-b'] })).status, 201);
    const added = (await send('POST', '/v1/host-clusters/dc1/hosts', { host: 'net-api-host' })).body as unknown as HostCluster;
    const p = added.status.principals[0]!;
    assert.deepEqual(p.segments, [100, 5000]);
    const cert = new x509.X509Certificate(p.certificate);
    assert.deepEqual(profileOf(cert), { profile: 'principal', name: 'net-api-host' });
    assert.deepEqual(vnetSegments(cert), [100, 5000]);
    assert.ok(await ctl.trust.ca.verify(p.certificate), 'issued by the cluster CA');
    const host = await api.get<Host>('/v1/hosts/net-api-host');
    assert.equal(Buffer.from(cert.publicKey.rawData).toString('base64'), host.status.trust?.publicKey, "the host's own key");
    // As openssl sees it: the extension is the UTF8String the docs describe, and the chain verifies.
    const files = env.dir.path;
    writeFileSync(join(files, 'ca.pem'), ctl.trust.ca.certPem);
    writeFileSync(join(files, 'principal.pem'), p.certificate);
    const text = execFileSync('openssl', ['x509', '-in', join(files, 'principal.pem'), '-noout', '-text'], { encoding: 'utf8' });
    assert.match(text, /1\.3\.6\.1\.4\.1\.55555\.1\.1:\s*\n\s*\.\.vnet-100,vnet-5000/);
    assert.match(text, /TLS Web Client Authentication/);
    assert.match(text, new RegExp(`URI:urn:outrig:host:${host.id}`));
    assert.match(execFileSync('openssl', ['verify', '-CAfile', join(files, 'ca.pem'), join(files, 'principal.pem')], { encoding: 'utf8' }), /OK/);
    // The same host again: the same principal; another cluster: refused.
    const again = (await send('POST', '/v1/host-clusters/dc1/hosts', { host: 'net-api-host' })).body as unknown as HostCluster;
    assert.equal(again.status.principals[0]!.serial, p.serial);
    const other = await send('POST', '/v1/host-clusters/dc2/hosts', { host: 'net-api-host' });
    assert.equal(other.status, 409);
    assert.match(other.body.error?.message ?? '', /host net-api-host is dedicated to cluster dc1 already/);
    // A network of a cluster stays.
    const del = await send('DELETE', '/v1/networks/net-a');
    assert.equal(del.status, 409);
    assert.match(del.body.error?.message ?? '', /net-a is a network of host cluster dc1/);
  });

  test('a principal certificate is no key to the API', async () => {
    const c = (await api.get<HostCluster>('/v1/host-clusters/dc1')).status.principals[0]!;
    const key = readFileSync(join(env.dir.path, 'agent', 'pki', 'host.key'), 'utf8');
    const r = await tlsFetch(`${ctl.url}/v1/networks`, { tls: { ca: ctl.trust.ca.certPem, cert: c.certificate, key } });
    assert.equal(r.status, 401);
    assert.match(await r.text(), /certificate profile principals may not use the API/);
  });

  test('taking the host out revokes its principal: the CRL names it and openssl refuses it', async () => {
    const p = (await api.get<HostCluster>('/v1/host-clusters/dc1')).status.principals[0]!;
    const r = await send('DELETE', '/v1/host-clusters/dc1/hosts/net-api-host');
    assert.equal(r.status, 200);
    assert.deepEqual((r.body as unknown as HostCluster).status.principals, []);
    const crl = await tlsFetch(`${ctl.url}/v1/pki/crl`, { tls: { ca: ctl.trust.ca.certPem }, token: ctl.adminToken });
    const pem = await crl.text();
    const parsed = new x509.X509Crl(pem);
    assert.ok(
      parsed.entries.some((e) => e.serialNumber.replace(/^0+/, '') === p.serial.replace(/^0+/, '')),
      'the serial is listed',
    );
    assert.ok(await parsed.verify({ publicKey: ctl.trust.ca.cert.publicKey }), 'signed by the cluster CA');
    const files = env.dir.path;
    writeFileSync(join(files, 'crl.pem'), pem);
    const v = spawnSync(
      'openssl',
      ['verify', '-crl_check', '-CAfile', join(files, 'ca.pem'), '-CRLfile', join(files, 'crl.pem'), join(files, 'principal.pem')],
      { encoding: 'utf8' },
    );
    assert.notEqual(v.status, 0);
    assert.match(v.stdout + v.stderr, /certificate revoked/);
    // The cluster can go once empty; the host may join another.
    assert.equal((await send('POST', '/v1/host-clusters/dc2/hosts', { host: 'net-api-host' })).status, 200);
    assert.equal((await send('DELETE', '/v1/host-clusters/dc1')).status, 204);
    assert.equal((await send('DELETE', '/v1/host-clusters/dc2')).status, 409);
  });
});
