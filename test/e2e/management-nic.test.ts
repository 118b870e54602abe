/**
 * A guest's management NIC (QEMU user-mode networking) is no path out of the guest (issue 16,
 * finding 2). Two real TCG guests of two tenants on one host: the guest of tenant "other" plays
 * the attacker through its test hook and tries, through 10.0.2.2 (QEMU's address for the host's
 * loopback), tenant "acme"'s guest's web page on its forwarded port, a server this test runs on
 * 127.0.0.1, and the controller's API. On main before the fix (b8fa89d, `-netdev user` without
 * `restrict=on`) all three answered the guest; now none does. The host still reaches both guests
 * through their forwards, as the README's `curl http://127.0.0.1:<forwarded port>/` does.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { Instance } from '../../src/model/instance.ts';
import { TEST_HOOK_ARG, hookReady, inGuest } from '../helpers/guest-hook.ts';
import { Cluster } from './cluster.ts';

describe("a guest's management NIC reaches nothing of the host or of other tenants", () => {
  const c = new Cluster();
  let loopback: Server;
  let loopbackPort = 0;
  const forwardOf = (i: Instance) => i.status.network.forwards.find((f) => f.guestPort === 80)!.hostPort;

  before(async () => {
    loopback = createServer((_req, res) => res.end('host-loopback-secret\n'));
    await new Promise<void>((r) => loopback.listen(0, '127.0.0.1', r));
    loopbackPort = (loopback.address() as { port: number }).port;
    await c.up();
    await c.ok('tenant', 'create', 'acme');
    await c.ok('tenant', 'create', 'other');
  });
  after(async () => {
    loopback?.close();
    await c.stop();
  });

  test("another tenant's forwarded port, the host's loopback services and the controller's API are out of the guest's reach; forwards from the host work", async (t) => {
    const acme = await c.json<Instance>('instance', 'create', 'acme-web', '--image', 'test', '--tenant', 'acme', '--wait-ready');
    const other = await c.json<Instance>(
      'instance',
      'create',
      'other-probe',
      '--image',
      'test',
      '--tenant',
      'other',
      '--kernel-args',
      TEST_HOOK_ARG,
      '--wait-ready',
    );
    const acmePort = forwardOf(acme);
    const otherPort = forwardOf(other);

    // From the host, through the forwards: the README's flow, and the test hook itself.
    assert.equal(await (await fetch(`http://127.0.0.1:${acmePort}/`)).text(), 'outrig test guest acme-web\n');
    await hookReady(otherPort);

    const apiPort = Number(new URL(c.controller!.url).port);
    // Each attempt prints its name, nc's exit status and what came back, on one line; the guest's
    // own page first, so a failure below cannot be a probe that does not work at all. (nc, not
    // wget: the guest's static busybox wget crashed in this hook.)
    const out = await inGuest(
      otherPort,
      `get() { printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $1 $2; }
try() { name=$1; shift; r=$("$@" 2>&1); echo "$name rc=$? $r" | tr '\\r\\n' '  '; echo; }
try self get 127.0.0.1 80
try acme-forward get 10.0.2.2 ${acmePort}
try host-loopback get 10.0.2.2 ${loopbackPort}
try api-tcp nc -w 5 10.0.2.2 ${apiPort} </dev/null
try dhcp udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true
`,
    );
    t.diagnostic(`what the guest got: ${out}`);
    const result = (name: string) => new RegExp(`^${name} rc=(\\d+) (.*)$`, 'm').exec(out) ?? assert.fail(`no ${name} line in ${out}`);
    assert.match(result('self')[2]!, /outrig test guest other-probe/, out);
    assert.doesNotMatch(result('acme-forward')[2]!, /outrig test guest acme-web/, `tenant other's guest fetched acme's page: ${out}`);
    assert.doesNotMatch(result('host-loopback')[2]!, /host-loopback-secret/, `the guest reached a server on the host's 127.0.0.1: ${out}`);
    assert.notEqual(result('api-tcp')[1], '0', `the guest opened a TCP connection to the controller's API port: ${out}`);
    // QEMU's own DHCP server still answers (images that configure eth0 by DHCP keep their forwards);
    // the script given to udhcpc does nothing, so eth0 keeps its address.
    assert.equal(result('dhcp')[1], '0', `no DHCP answer on the management NIC: ${out}`);

    // The forwards still work after the attempts.
    assert.equal(await (await fetch(`http://127.0.0.1:${acmePort}/`)).text(), 'outrig test guest acme-web\n');
  });
});
