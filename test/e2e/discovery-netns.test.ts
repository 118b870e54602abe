/**
 * Discovery across a real (namespaced) LAN: two controllers with different capabilities and
 * three agents with different policies, each a separate `outrig` process in its own network
 * namespace, finding each other by UDP multicast/broadcast only.
 *  - h1 requires cluster lab-a, carries label rack=r1 and the rule's bootstrap token, and pins
 *    lab-a's CA: lab-a admits it by an enrollment rule.
 *  - h2 requires feature gpu: only lab-b offers it; no rule matches, so it waits for approval,
 *    which an operator gives with `outrig host approve` on lab-b.
 *  - h3 requires cluster prod: both controllers decline, it keeps waiting and logs their reasons.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Host } from '../../src/model/host.ts';
import { killProcessesUnder } from '../helpers/cleanup.ts';
import { createLan, runInNs, type Lan } from '../helpers/netns.ts';
import { stopDaemon, type Daemon } from '../helpers/processes.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('discovery on a LAN of network namespaces', () => {
  const dir = tempDir('outrig-netns-');
  let lan: Lan;
  const daemons: Record<string, Daemon> = {};
  const ctlEnv = (c: 'ctl-a' | 'ctl-b') => ({ OUTRIG_DATA: join(dir.path, c), OUTRIG_URL: `https://${lan.node(c).addr}:7440`, OUTRIG_LOG_LEVEL: 'info' });
  const cli = async (c: 'ctl-a' | 'ctl-b', ...args: string[]) => {
    const r = await runInNs(lan.node(c).ns, args, ctlEnv(c));
    if (r.code !== 0) throw new Error(`outrig ${args.join(' ')} on ${c} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const hosts = async (c: 'ctl-a' | 'ctl-b') => JSON.parse(await cli(c, 'host', 'list', '--json')) as Host[];

  const startController = async (c: 'ctl-a' | 'ctl-b', args: string[]) => {
    // Declines answered (silent by default): h3 reads both controllers' reasons.
    const d = lan.outrig(c, ['controller', '--listen', `${lan.node(c).addr}:7440`, '--heartbeat-ms', '500', '--answer-declines', ...args], ctlEnv(c));
    daemons[c] = d;
    await waitUntil(
      `${c} to answer discovery`,
      () => {
        if (d.proc.exitCode !== null) throw new Error(`${c} exited: ${d.output()}`);
        return d.output().includes('answering discovery on UDP 7441');
      },
      30_000,
    );
  };
  const startAgent = (h: string, args: string[], env: Record<string, string> = {}) => {
    daemons[h] = lan.outrig(h, ['agent', '--discover', '--name', h, '--data', join(dir.path, h), '--stop-timeout', '5', ...args], {
      OUTRIG_DATA: join(dir.path, `${h}-home`),
      OUTRIG_LOG_LEVEL: 'info',
      ...env,
    });
  };

  before(async () => {
    lan = createLan(['ctl-a', 'ctl-b', 'h1', 'h2', 'h3']);
    await startController('ctl-a', ['--cluster', 'lab-a', '--feature', 'mtls', '--feature', 'kvm', '--feature', 'tcg']);
    await startController('ctl-b', ['--cluster', 'lab-b', '--cluster-label', 'tier=gpu', '--feature', 'mtls', '--feature', 'tcg', '--feature', 'gpu']);
    // The labels narrow the rule; its token (which goes only to the pinned CA) is what admits.
    const { token } = JSON.parse(
      await cli('ctl-a', 'cluster', 'enroll-rule', 'add', 'rack-r1', '--kind', 'labels', '--label', 'rack=r1', '--with-token', '--json'),
    ) as { token: string };
    const { caFingerprint } = JSON.parse(await cli('ctl-a', 'cluster', 'info', '--json')) as { caFingerprint: string };
    startAgent('h1', ['--require-cluster', 'lab-a', '--require-feature', 'mtls', '--label', 'rack=r1', '--ca-fingerprint', caFingerprint], {
      OUTRIG_BOOTSTRAP_TOKEN: token,
    });
    startAgent('h2', ['--require-feature', 'gpu', '--label', 'rack=r2']);
    startAgent('h3', ['--require-cluster', 'prod']);
  });

  after(async () => {
    for (const d of Object.values(daemons)) await stopDaemon(d);
    await killProcessesUnder(dir.path);
    lan?.cleanup();
    dir.remove();
  });

  test('h1 joins lab-a through its enrollment rule and becomes ready', async () => {
    const h1 = await waitUntil(
      'h1 ready on lab-a',
      async () => (await hosts('ctl-a')).find((h) => h.name === 'h1' && h.status.phase === 'ready'),
      120_000,
      500,
    );
    assert.equal(h1.status.trust?.approvedBy, 'rule rack-r1');
    assert.match(daemons.h1!.output(), /joined https:\/\/10\.77\.0\.1:7440/);
  });

  test('h2 finds lab-b, waits in pending-approval, and is ready once approved through the CLI', async () => {
    const pending = await waitUntil(
      'h2 pending on lab-b',
      async () => (await hosts('ctl-b')).find((h) => h.name === 'h2' && h.status.phase === 'pending-approval'),
      120_000,
      500,
    );
    const table = await cli('ctl-b', 'host', 'list', '--pending');
    assert.match(table, /h2\s+\S+\s+pending-approval\s+pending/);
    assert.match(daemons.h2!.output(), /waiting for an operator to approve this host/);
    const approved = await cli('ctl-b', 'host', 'approve', 'h2');
    assert.match(approved, /host h2 \(.*\) approved/);
    const h2 = await waitUntil(
      'h2 ready on lab-b',
      async () => (await hosts('ctl-b')).find((h) => h.id === pending.id && h.status.phase === 'ready'),
      120_000,
      500,
    );
    assert.equal(h2.status.trust?.approvedBy, 'admin');
    assert.match(daemons.h2!.output(), /joined https:\/\/10\.77\.0\.2:7440/);
  });

  test("h3, whose policy no controller supports, keeps waiting and logs both controllers' reasons", async () => {
    await waitUntil(
      'declines from both controllers',
      () => {
        const out = daemons.h3!.output();
        return out.includes("cluster=prod: this controller's cluster is 'lab-a'") && out.includes("cluster=prod: this controller's cluster is 'lab-b'");
      },
      60_000,
      200,
    );
    assert.equal(daemons.h3!.proc.exitCode, null, 'h3 is still trying');
    assert.doesNotMatch(daemons.h3!.output(), /joined/);
    assert.match(daemons.h3!.output(), /still discovering/);
  });

  test('each controller holds exactly the hosts whose policy it supports', async () => {
    assert.deepEqual(
      (await hosts('ctl-a')).map((h) => h.name),
      ['h1'],
    );
    assert.deepEqual(
      (await hosts('ctl-b')).map((h) => h.name),
      ['h2'],
    );
    // The agents reached their controller's API over the LAN with their certificates (mTLS), not by any shared secret.
    const metrics = await cli('ctl-a', 'cluster', 'info', '--json');
    assert.equal((JSON.parse(metrics) as { hosts: number }).hosts, 1);
  });
});
