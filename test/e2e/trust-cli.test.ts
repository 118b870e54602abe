/**
 * Trust through the CLI against separate controller and agent processes: enrollment rules, a
 * rejected host, a revoked host, and the operator credentials the CLI uses.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Host } from '../../src/model/host.ts';
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
    const h = await waitUntil('stranger pending', async () => ((await host('stranger'))?.status.phase === 'pending-approval' ? host('stranger') : undefined), 60_000, 200);
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
    const h = await waitUntil('from-file ready', async () => ((await host('from-file'))?.status.phase === 'ready' ? host('from-file') : undefined), 60_000, 200);
    assert.equal(h!.status.trust?.approvedBy, 'rule token-file');
  });
});
