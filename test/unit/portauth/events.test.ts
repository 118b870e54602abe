import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextPortState, parseDecision, parseHostapdEvent, revokedPorts, type Decision, type PortState } from '../../../src/portauth/events.ts';
import { hostapdConfig } from '../../../src/portauth/port-controller.ts';
import { radiusConfig, radiusDictionary, VNET_ATTRIBUTE } from '../../../src/portauth/freeradius.ts';
import { planPortSegment } from '../../../src/network/port-plan.ts';
import { wpaSupplicantConfig } from '../../../src/agent/supplicant.ts';

// Lines as hostapd_cli (interactive) and the FreeRADIUS linelog printed them in test/e2e/dedicated-cluster.test.ts.
test('hostapd_cli event lines', () => {
  assert.deepEqual(parseHostapdEvent('> <3>AP-STA-CONNECTED 06:07:90:42:d0:fc'), { kind: 'connected', mac: '06:07:90:42:d0:fc' });
  assert.deepEqual(parseHostapdEvent('<3>AP-STA-DISCONNECTED 06:07:90:42:D0:FC'), { kind: 'disconnected', mac: '06:07:90:42:d0:fc' });
  assert.deepEqual(parseHostapdEvent('<3>CTRL-EVENT-EAP-SUCCESS2 32:b4:e4:9c:62:d2'), { kind: 'eap-success', mac: '32:b4:e4:9c:62:d2' });
  assert.deepEqual(parseHostapdEvent('<3>CTRL-EVENT-EAP-FAILURE2 32:b4:e4:9c:62:d2'), { kind: 'eap-failure', mac: '32:b4:e4:9c:62:d2' });
  assert.deepEqual(parseHostapdEvent('<3>CTRL-EVENT-EAP-TIMEOUT-FAILURE2 32:b4:e4:9c:62:d2'), { kind: 'eap-failure', mac: '32:b4:e4:9c:62:d2' });
  for (const other of ['Interactive mode', '> ', '<3>CTRL-EVENT-EAP-PROPOSED-METHOD vendor=0 method=1', 'AP-STA-CONNECTED not-a-mac']) assert.equal(parseHostapdEvent(other), undefined, other);
});

test('RADIUS decision lines', () => {
  assert.deepEqual(parseDecision('accept mac=02-AE-22-91-8A-8F serial=07143de4967b848aa3885be97d0d22f2f cn=h1 segment=100'), {
    accept: true,
    mac: '02:ae:22:91:8a:8f',
    serial: '7143de4967b848aa3885be97d0d22f2f',
    cn: 'h1',
    segment: 100,
  });
  assert.deepEqual(parseDecision('reject mac=A2-E7-7D-B6-1A-68 cn=h4 reason=eap_tls: (TLS) OpenSSL says error 10 : certificate has expired'), {
    accept: false,
    mac: 'a2:e7:7d:b6:1a:68',
    cn: 'h4',
    reason: 'eap_tls: (TLS) OpenSSL says error 10 : certificate has expired',
  });
  assert.equal(parseDecision('accept mac=02-AE-22-91-8A-8F serial=ab cn=h1 segment='), undefined, 'an accept without a segment is no decision');
});

const mac = '02:ae:22:91:8a:8f';
const accept: Decision = { accept: true, mac, serial: 'abc1', cn: 'h1', segment: 100 };
const idle: PortState = { port: 'd1', reason: 'not authenticated yet' };

test('a port joins the network of the accept decision for its station, and only then', () => {
  const d = new Map([[mac, accept]]);
  const joined = nextPortState(idle, { kind: 'connected', mac }, d);
  assert.deepEqual([joined.segment, joined.serial, joined.cn], [100, 'abc1', 'h1']);
  assert.equal(nextPortState(idle, { kind: 'connected', mac }, new Map()).segment, undefined, 'authorized without a decision on record');
  const rejected = nextPortState(idle, { kind: 'connected', mac }, new Map([[mac, { accept: false, mac, cn: 'h1', reason: 'certificate revoked' } as Decision]]));
  assert.equal(rejected.segment, undefined);
  assert.match(rejected.reason, /rejected: certificate revoked/);
});

test('disconnects and failures take the port out; another station leaving changes nothing; re-authentication keeps it', () => {
  const d = new Map([[mac, accept]]);
  const joined = nextPortState(idle, { kind: 'connected', mac }, d);
  assert.equal(nextPortState(joined, { kind: 'disconnected', mac }, d).segment, undefined);
  assert.equal(nextPortState(joined, { kind: 'eap-failure', mac }, d).segment, undefined);
  assert.equal(nextPortState(joined, { kind: 'disconnected', mac: '02:00:00:00:00:99' }, d).segment, 100);
  assert.equal(nextPortState(joined, { kind: 'eap-success', mac }, d).segment, 100);
  assert.equal(nextPortState(idle, { kind: 'eap-success', mac }, d).segment, undefined, 'a first success waits for AP-STA-CONNECTED');
  // Re-authenticated with a principal for another network: the port follows.
  assert.equal(nextPortState(joined, { kind: 'eap-success', mac }, new Map([[mac, { ...accept, segment: 205 }]])).segment, 205);
});

test('revoked principals name the ports to take out', () => {
  const a = { port: 'd1', mac, segment: 100, serial: 'abc1', reason: '' };
  const b = { port: 'd2', mac: '02:00:00:00:00:02', segment: 100, serial: 'abc2', reason: '' };
  assert.deepEqual(revokedPorts([a, b, idle], new Set(['abc2'])).map((p) => p.port), ['d2']);
});

test('configurations: hostapd gates nothing itself, RADIUS checks the CRL and reads the extension, the supplicant uses the principal', () => {
  const h = hostapdConfig('d1', '/run/h', 18120, 'secret');
  assert.match(h, /^driver=wired$/m);
  assert.match(h, /^dynamic_vlan=0$/m);
  assert.match(h, /^auth_server_port=18120$/m);
  const r = radiusConfig({ paths: { dir: '/s', cert: '/s/c', key: '/s/k', caAndCrl: '/s/ca', decisions: '/s/d' }, secret: 'secret', authPort: 18120 });
  assert.match(r, /check_crl = yes/);
  assert.match(r, /tls_max_version = "1\.2"/);
  assert.ok(r.includes(`%{string:${VNET_ATTRIBUTE}}`));
  assert.match(r, /Tunnel-Private-Group-Id := "%\{1\}"/);
  assert.equal(radiusDictionary(), 'ATTRIBUTE\tTLS-Client-Cert-1.3.6.1.4.1.55555.1.1\t3101\toctets\n');
  const w = wpaSupplicantConfig({ ctrlDir: '/c', identity: 'h1', ca: '/ca', cert: '/p.crt', key: '/k' });
  assert.match(w, /eap=TLS/);
  assert.match(w, /client_cert="\/p\.crt"/);
});

test('a port-carried network: the dedicated NIC joins the bridge, and a VXLAN device for it goes', () => {
  const links = [
    { name: 'eth1', mtu: 1500, up: true, kind: 'veth' },
    { name: 'ovx100', mtu: 1450, up: true, kind: 'vxlan', master: 'obr100' },
  ];
  assert.deepEqual(planPortSegment(links, 100, 'eth1'), [
    ['ip', 'link', 'add', 'obr100', 'type', 'bridge'],
    ['ip', 'link', 'del', 'ovx100'],
    ['ip', 'link', 'set', 'eth1', 'master', 'obr100', 'up'],
    ['ip', 'link', 'set', 'obr100', 'up'],
  ]);
  const done = [{ name: 'eth1', mtu: 1500, up: true, kind: 'veth', master: 'obr100' }, { name: 'obr100', mtu: 1500, up: true, kind: 'bridge' }];
  assert.deepEqual(planPortSegment(done, 100, 'eth1'), []);
  assert.throws(() => planPortSegment(done, 100, 'eth9'), /dedicated port eth9 does not exist/);
});
