/**
 * Trust through the CLI against separate controller and agent processes: enrollment rules, a
 * rejected host, a revoked host, and the operator credentials the CLI uses.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Host } from '../../src/model/host.ts';
import type { Certificate } from '../../src/model/trust.ts';
import { runCli, spawnOutrig, stopDaemon, type Daemon } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';
import { Cluster } from './cluster.ts';

describe('trust through the CLI', () => {
  const c = new Cluster();
  const agents: Daemon[] = [];
  before(() => c.startController());
  after(async () => {
    for (const a of agents) await stopDaemon(a);
    await c.stop();
  });

  const agent = (name: string, extra: string[] = []) => {
    const d = spawnOutrig(['agent', '--controller', c.controller!.url, '--data', join(c.dir.path, name), '--name', name, ...extra], c.env);
    agents.push(d);
    return d;
  };
  const host = async (name: string) => (await c.json<Host[]>('host', 'list')).find((h) => h.name === name);

  test('the admin token is private and the CLI uses it; other credentials get a clear 401', async () => {
    assert.equal(statSync(join(c.dir.path, 'admin-token')).mode & 0o777, 0o600);
    assert.equal((await c.cli('host', 'list')).code, 0);
    const wrong = await runCli(['host', 'list'], { ...c.env, OUTRIG_TOKEN: 'not-the-token' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused these credentials/);
    const info = await c.json<{ caFingerprint: string; cluster: string }>('cluster', 'info');
    assert.match(info.caFingerprint, /^[0-9a-f]{64}$/);
  });

  test('enrollment rules: add shows a token once, list shows uses, remove deletes; bad rules change nothing', async () => {
    const added = await c.json<{ rule: { name: string }; token: string }>('cluster', 'enroll-rule', 'add', 'once', '--kind', 'token', '--expires-in', '1h');
    assert.match(added.token, /^[A-Za-z0-9_-]{32}$/);
    const list = await c.cli('cluster', 'enroll-rule', 'list');
    assert.match(list.stdout, /once\s+token\s+bootstrap token\s+0\/1\s+active/);
    assert.doesNotMatch(list.stdout, new RegExp(added.token), 'the token is never shown again');
    const bad = await c.cli('cluster', 'enroll-rule', 'add', 'ids', '--kind', 'host-ids');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /needs at least one --host-id/);
    const dup = await c.cli('cluster', 'enroll-rule', 'add', 'once', '--kind', 'token');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    assert.equal((await c.json<unknown[]>('cluster', 'enroll-rule', 'list')).length, 1);
    assert.equal((await c.cli('cluster', 'enroll-rule', 'remove', 'once')).code, 0);
    assert.deepEqual(await c.json<unknown[]>('cluster', 'enroll-rule', 'list'), []);
  });

  test('a host nobody admits waits; once rejected it is refused and the agent says why', async () => {
    const a = agent('stranger');
    const h = await waitUntil(
      'stranger pending',
      async () => ((await host('stranger'))?.status.phase === 'pending-approval' ? host('stranger') : undefined),
      60_000,
      200,
    );
    assert.match((await c.cli('host', 'list', '--pending')).stdout, /stranger/);
    const r = await c.cli('host', 'reject', 'stranger');
    assert.equal(r.code, 0, r.stderr);
    const code = await a.exited;
    assert.equal(code, 1);
    assert.match(a.output(), /rejected by an operator/);
    assert.equal((await host('stranger'))!.status.phase, 'rejected');
    assert.equal(h!.status.trust?.state, 'pending');
    const again = await c.cli('host', 'approve', 'stranger');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not waiting for approval/);
  });

  /** A token in a file only its owner reads, as an operator hands it to an agent. */
  const tokenFile = async (rule: string) => {
    const { token } = await c.json<{ token: string }>('cluster', 'enroll-rule', 'add', rule, '--kind', 'token');
    const file = join(c.dir.path, `${rule}.token`);
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return { token, file };
  };

  test('a revoked host is cut off at once and stays out', async () => {
    const { file } = await tokenFile('for-revoke');
    const a = agent('doomed', ['--bootstrap-token-file', file]);
    await waitUntil('doomed ready', async () => (await host('doomed'))?.status.phase === 'ready', 60_000, 200);
    const r = await c.cli('host', 'revoke', 'doomed');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /revoked; phase revoked/);
    await waitUntil('the agent to be refused', () => /controller refused this host's certificate: client certificate revoked/.test(a.output()), 30_000, 100);
    const h = (await host('doomed'))!;
    assert.equal(h.status.phase, 'revoked');
    assert.equal(h.status.agent.connected, false);
  });

  test('the bootstrap token never appears on the command line: the old flag is refused with directions, a token file enrolls', async () => {
    const { token, file } = await tokenFile('token-file');
    const old = agent('flagged', ['--bootstrap-token', token]);
    assert.equal(await waitUntil('the agent given the token as an argument to exit', () => old.proc.exitCode ?? undefined, 20_000, 100), 2);
    assert.match(old.output(), /--bootstrap-token is no longer accepted.*\/proc\/PID\/cmdline.*--bootstrap-token-file FILE.*OUTRIG_BOOTSTRAP_TOKEN/s);
    assert.equal(await host('flagged'), undefined, 'nothing was sent to the controller');
    const a = agent('from-file', ['--bootstrap-token-file', file]);
    const cmdline = readFileSync(`/proc/${a.proc.pid}/cmdline`, 'utf8');
    assert.match(cmdline, /--bootstrap-token-file/);
    assert.doesNotMatch(cmdline, new RegExp(token), 'no other user of the machine can read the token');
    const h = await waitUntil(
      'from-file ready',
      async () => ((await host('from-file'))?.status.phase === 'ready' ? host('from-file') : undefined),
      60_000,
      200,
    );
    assert.equal(h!.status.trust?.approvedBy, 'rule token-file');
  });

  test('rules that admit on claims are refused unless marked unauthenticated, and list and show say which they are', async () => {
    const bare = await c.cli('cluster', 'enroll-rule', 'add', 'rack1', '--kind', 'labels', '--label', 'rack=1');
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /anyone on the network can claim.*--with-token.*--key-fingerprint.*--allow-unauthenticated/);
    const bound = await c.cli('cluster', 'enroll-rule', 'add', 'rack1', '--kind', 'labels', '--label', 'rack=1', '--with-token');
    assert.equal(bound.code, 0, bound.stderr);
    assert.match(bound.stdout, /authenticated by token/);
    assert.match(bound.stdout, /bootstrap token \(shown only now\): \S{32}\n/);
    assert.match(bound.stdout, /outrig agent --discover --ca-fingerprint [0-9a-f]{64} --bootstrap-token-file FILE/);
    const open = await c.json<{ rule: { spec: { unauthenticated?: boolean } } }>(
      'cluster',
      'enroll-rule',
      'add',
      'open-zone',
      '--kind',
      'labels',
      '--label',
      'zone=z',
      '--allow-unauthenticated',
    );
    assert.equal(open.rule.spec.unauthenticated, true);
    const list = (await c.ok('cluster', 'enroll-rule', 'list')).stdout;
    assert.match(list, /rack1\s+labels\s+labels: rack=1\s+0\/∞\s+active\s+token\s/);
    assert.match(list, /open-zone\s+labels\s+labels: zone=z\s+0\/∞\s+active\s+NONE \(unauthenticated: anyone can claim\)/);
    assert.match((await c.ok('cluster', 'enroll-rule', 'show', 'open-zone')).stdout, /authentication: NONE \(unauthenticated: anyone can claim\)/);
    for (const r of ['rack1', 'open-zone']) await c.ok('cluster', 'enroll-rule', 'remove', r);
  });

  test('cert list shows every certificate; cert revoke by name cuts an operator off at once (--json)', async () => {
    const out = join(c.dir.path, 'op-bob');
    await c.ok('cluster', 'operator-cert', 'bob', '--out-dir', out);
    const asBob = { ...c.env, OUTRIG_CERT: join(out, 'operator.crt'), OUTRIG_KEY: join(out, 'operator.key'), OUTRIG_CA: join(out, 'ca.crt') };
    assert.equal((await runCli(['host', 'list'], asBob)).code, 0);
    const all = await c.json<Certificate[]>('cert', 'list');
    assert.deepEqual([...new Set(all.map((x) => x.spec.profile))].sort(), ['host', 'operator', 'server'], "hosts', operators' and the controller's own");
    assert.deepEqual(
      (await c.json<Certificate[]>('cert', 'list', '--profile', 'operator')).map((x) => [x.spec.subject, x.status.phase]),
      [['CN=bob', 'valid']],
    );
    const revoked = await c.json<Certificate[]>('cert', 'revoke', 'bob');
    assert.deepEqual(
      revoked.map((x) => [x.spec.subject, x.status.phase]),
      [['CN=bob', 'revoked']],
    );
    const refused = await runCli(['host', 'list'], asBob);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refused these credentials.*client certificate revoked/);
    assert.match((await c.ok('cert', 'list', '--profile', 'operator')).stdout, new RegExp(`${revoked[0]!.name}\\s+operator\\s+CN=bob\\s+-\\s+revoked`));
    const unknown = await c.cli('cert', 'revoke', 'nobody');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no certificate with serial or name 'nobody'/);
  });

  test('host delete forgets a host that holds nothing; a connected host is refused', async () => {
    const connected = await c.cli('host', 'delete', 'from-file');
    assert.equal(connected.code, 1);
    assert.match(connected.stderr, /is connected; revoke it first/);
    assert.equal((await host('stranger'))?.status.phase, 'rejected');
    assert.deepEqual(await c.json('host', 'delete', 'stranger'), [{ host: 'stranger', deleted: true }]);
    assert.equal(await host('stranger'), undefined);
  });
});
