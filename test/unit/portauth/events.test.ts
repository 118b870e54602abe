import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DECISION_TTL_MS,
  decisionKey,
  expiredDecisions,
  nextPortState,
  parseDecision,
  parseHostapdEvent,
  revokedPorts,
  type Decision,
  type PortState,
} from '../../../src/portauth/events.ts';
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
  for (const other of ['Interactive mode', '> ', '<3>CTRL-EVENT-EAP-PROPOSED-METHOD vendor=0 method=1', 'AP-STA-CONNECTED not-a-mac'])
    assert.equal(parseHostapdEvent(other), undefined, other);
});

test('RADIUS decision lines', () => {
  assert.deepEqual(parseDecision('accept mac=02-AE-22-91-8A-8F port=d1 at=1765000000 serial=07143de4967b848aa3885be97d0d22f2f cn=h1 segment=100'), {
    accept: true,
    mac: '02:ae:22:91:8a:8f',
    port: 'd1',
    at: 1765000000000,
    serial: '7143de4967b848aa3885be97d0d22f2f',
    cn: 'h1',
    segment: 100,
  });
  assert.deepEqual(
    parseDecision('reject mac=A2-E7-7D-B6-1A-68 port=d5 at=1765000001 cn=h4 reason=eap_tls: (TLS) OpenSSL says error 10 : certificate has expired'),
    {
      accept: false,
      mac: 'a2:e7:7d:b6:1a:68',
      port: 'd5',
      at: 1765000001000,
      cn: 'h4',
      reason: 'eap_tls: (TLS) OpenSSL says error 10 : certificate has expired',
    },
  );
  assert.equal(
    parseDecision('accept mac=02-AE-22-91-8A-8F port=d1 at=1765000000 serial=ab cn=h1 segment='),
    undefined,
    'an accept without a segment is no decision',
  );
  assert.equal(parseDecision('accept mac=02-AE-22-91-8A-8F serial=ab cn=h1 segment=100'), undefined, 'nor one that names no port and time');
});

const mac = '02:ae:22:91:8a:8f';
const t0 = Date.parse('2026-12-07T10:00:00Z');
const now = t0 + 1000;
const accept: Decision = { accept: true, port: 'd1', mac, at: t0, serial: 'abc1', cn: 'h1', segment: 100 };
const decisions = (...ds: Decision[]) => new Map(ds.map((d) => [decisionKey(d.port, d.mac), d]));
const idle: PortState = { port: 'd1', reason: 'not authenticated yet' };

test('a port joins the network of the accept decision for its station, and only then', () => {
  const d = decisions(accept);
  const joined = nextPortState(idle, { kind: 'connected', mac }, d, now);
  assert.deepEqual([joined.segment, joined.serial, joined.cn], [100, 'abc1', 'h1']);
  assert.equal(nextPortState(idle, { kind: 'connected', mac }, new Map(), now).segment, undefined, 'authorized without a decision on record');
  const rejected = nextPortState(
    idle,
    { kind: 'connected', mac },
    decisions({ accept: false, port: 'd1', mac, at: t0, cn: 'h1', reason: 'certificate revoked' }),
    now,
  );
  assert.equal(rejected.segment, undefined);
  assert.match(rejected.reason, /rejected: certificate revoked/);
});

test('disconnects and failures take the port out; another station leaving changes nothing; re-authentication keeps it', () => {
  const d = decisions(accept);
  const joined = nextPortState(idle, { kind: 'connected', mac }, d, now);
  assert.equal(nextPortState(joined, { kind: 'disconnected', mac }, d, now).segment, undefined);
  assert.equal(nextPortState(joined, { kind: 'eap-failure', mac }, d, now).segment, undefined);
  assert.equal(nextPortState(joined, { kind: 'disconnected', mac: '02:00:00:00:00:99' }, d, now).segment, 100);
  assert.equal(nextPortState(joined, { kind: 'eap-success', mac }, d, now).segment, 100);
  assert.equal(nextPortState(idle, { kind: 'eap-success', mac }, d, now).segment, undefined, 'a first success waits for AP-STA-CONNECTED');
  // Re-authenticated with a principal for another network: the port follows.
  assert.equal(nextPortState(joined, { kind: 'eap-success', mac }, decisions({ ...accept, segment: 205 }), now).segment, 205);
});

// Issue 16, finding 5: on main before the fix (b8fa89d) any other station's eap-failure, or its
// authorization with no decision on record, replaced the port's state and took the holder's
// network away; and decisions were keyed by MAC alone, with no age.
const holder: PortState = { port: 'd1', mac, segment: 100, serial: 'abc1', cn: 'h1', reason: 'authorized as h1' };
const stranger = '02:00:00:00:00:66';

test('while a station holds the port, another station failing, starting, rejected or authorized without a decision changes nothing', () => {
  const d = decisions(accept, { accept: false, port: 'd1', mac: stranger, at: t0, cn: 'x', reason: 'TLS handshake refused' });
  for (const kind of ['eap-failure', 'eap-started', 'connected', 'eap-success', 'disconnected'] as const) {
    assert.equal(nextPortState(holder, { kind, mac: stranger }, d, now), holder, `${kind} of ${stranger}`);
    assert.equal(nextPortState(holder, { kind, mac: stranger }, new Map(), now), holder, `${kind} of ${stranger}, no decision on record`);
  }
  // Even a station another port's RADIUS accepted does not move this port.
  assert.equal(nextPortState(holder, { kind: 'connected', mac: stranger }, decisions({ ...accept, mac: stranger, segment: 205 }), now), holder);
});

test('a decision counts for its own port and station only, and only for DECISION_TTL_MS', () => {
  assert.equal(
    nextPortState(idle, { kind: 'connected', mac }, decisions({ ...accept, port: 'd2' }), now).segment,
    undefined,
    "another port's accept for the same MAC",
  );
  assert.equal(nextPortState(idle, { kind: 'connected', mac }, decisions(accept), t0 + DECISION_TTL_MS).segment, 100);
  const stale = nextPortState(idle, { kind: 'connected', mac }, decisions(accept), t0 + DECISION_TTL_MS + 1);
  assert.equal(stale.segment, undefined, 'a decision older than the TTL admits nobody');
  assert.match(stale.reason, /without a recent RADIUS decision for port d1/);
  // The holder's MAC rejected on another port (someone copying it there) does not spoil its re-authentication here.
  const d = decisions(accept, { accept: false, port: 'd2', mac, at: t0 + 500, cn: 'x', reason: 'unknown CA' });
  assert.equal(nextPortState(holder, { kind: 'eap-success', mac }, d, now).segment, 100);
  assert.deepEqual(expiredDecisions(d, t0 + DECISION_TTL_MS + 1), [decisionKey('d1', mac)]);
  assert.deepEqual(expiredDecisions(d, now), []);
});

test('revoked principals name the ports to take out', () => {
  const a = { port: 'd1', mac, segment: 100, serial: 'abc1', reason: '' };
  const b = { port: 'd2', mac: '02:00:00:00:00:02', segment: 100, serial: 'abc2', reason: '' };
  assert.deepEqual(
    revokedPorts([a, b, idle], new Set(['abc2'])).map((p) => p.port),
    ['d2'],
  );
});

test('configurations: hostapd gates nothing itself, RADIUS checks the CRL and reads the extension, the supplicant uses the principal', () => {
  const h = hostapdConfig('d1', '/run/h', 18120, 'secret');
  assert.match(h, /^driver=wired$/m);
  assert.match(h, /^dynamic_vlan=0$/m);
  assert.match(h, /^auth_server_port=18120$/m);
  assert.match(h, /^radius_auth_req_attr=87:s:d1$/m, 'every RADIUS request names its port (NAS-Port-Id)');
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
  const done = [
    { name: 'eth1', mtu: 1500, up: true, kind: 'veth', master: 'obr100' },
    { name: 'obr100', mtu: 1500, up: true, kind: 'bridge' },
  ];
  assert.deepEqual(planPortSegment(done, 100, 'eth1'), []);
  assert.throws(() => planPortSegment(done, 100, 'eth9'), /dedicated port eth9 does not exist/);
});
