/**
 * `outrig backup --repo` on its own, the way restic users drive it: passphrase only from the
 * environment or a file, snapshot references by prefix or `latest`, restore under a target at the
 * original paths, verify's exit code on damage, and clear errors for the usual mistakes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runCli } from '../helpers/processes.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('outrig backup --repo', () => {
  const tmp = tempDir('outrig-backup-cli-');
  after(() => tmp.remove());
  const repo = join(tmp.path, 'repo');
  const src = join(tmp.path, 'data');
  const passFile = join(tmp.path, 'pass');
  const env = { OUTRIG_BACKUP_PASSPHRASE: 'correct horse battery staple' };
  const cli = (args: string[], e: Record<string, string> = env) => runCli(['backup', '--repo', repo, ...args], { OUTRIG_BACKUP_PASSPHRASE: '', ...e });

  test('init refuses without a passphrase, then makes an encrypted repository', async () => {
    const none = await cli(['init'], {});
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no passphrase: set OUTRIG_BACKUP_PASSPHRASE or give --passphrase-file/);
    const ok = await cli(['init']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /repository [0-9a-f]{8} created/);
    const again = await cli(['init']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /a repository already exists/);
  });

  test('create, list, show, restore one file by prefix and latest; a wrong passphrase opens nothing', async () => {
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'alpha\n');
    writeFileSync(join(src, 'sub', 'b.txt'), 'beta\n');
    const c = await cli(['create', src, '--json']);
    assert.equal(c.code, 0, c.stderr);
    const snap = JSON.parse(c.stdout) as { id: string; files: number };
    assert.equal(snap.files, 2);
    writeFileSync(join(src, 'a.txt'), 'alpha 2\n');
    writeFileSync(passFile, `${env.OUTRIG_BACKUP_PASSPHRASE}\n`);
    const c2 = await runCli(['backup', '--repo', repo, '--passphrase-file', passFile, 'create', src, '--json'], { OUTRIG_BACKUP_PASSPHRASE: '' });
    assert.equal(c2.code, 0, c2.stderr);
    const second = JSON.parse(c2.stdout) as { parent: string; unchanged: number; bytesRead: number };
    assert.equal(second.parent, snap.id, 'the latest snapshot of the same paths is the parent');
    assert.equal(second.unchanged, 1);
    assert.equal(second.bytesRead, 'alpha 2\n'.length);

    const list = JSON.parse((await cli(['list', '--json'])).stdout) as { id: string }[];
    assert.equal(list.length, 2);
    const show = await cli(['show', snap.id.slice(0, 6)]);
    assert.match(show.stdout, /bmrReady: no/);

    const target = join(tmp.path, 'out');
    const r = await cli(['restore', snap.id.slice(0, 8), '--target', target, '--include', join(src, 'a.txt')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(target, src, 'a.txt'), 'utf8'), 'alpha\n');
    const r2 = await cli(['restore', 'latest', '--target', target]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(readFileSync(join(target, src, 'a.txt'), 'utf8'), 'alpha 2\n');
    assert.equal(readFileSync(join(target, src, 'sub', 'b.txt'), 'utf8'), 'beta\n');

    const wrong = await cli(['list'], { OUTRIG_BACKUP_PASSPHRASE: 'nope' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /wrong passphrase/);
    const missing = await cli(['create', join(tmp.path, 'no-such-dir')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no-such-dir does not exist/);
    const ambiguous = await cli(['show', 'zzzz']);
    assert.match(ambiguous.stderr, /no snapshot 'zzzz'/);
  });

  test('verify exits 0 when whole and 1 naming the damage; prune needs a rule', async () => {
    assert.equal((await cli(['verify'])).code, 0);
    const noRule = await cli(['prune']);
    assert.equal(noRule.code, 2);
    assert.match(noRule.stderr, /give at least one retention rule/);
    const pruned = await cli(['prune', '--keep-last', '1']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.match(pruned.stdout, /[0-9a-f]{8} {2}\S+ \S+ {2}keep \(last\)/);
    assert.equal(JSON.parse((await cli(['list', '--json'])).stdout).length, 1);
  });
});
