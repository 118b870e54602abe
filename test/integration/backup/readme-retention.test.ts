/**
 * README's standalone backup sequence, in its order (issue 18, finding 1): files of /etc and
 * /home, then a disk image, then `prune --keep-daily 7`. Retention applies per host and source as
 * restic's does, so both snapshots stay; `--dry-run` shows each group with why each stays.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runCli } from '../../helpers/processes.ts';
import { partitionedExt4 } from '../../helpers/small-disks.ts';
import { tempDir } from '../../helpers/tmp.ts';

const tmp = tempDir('outrig-readme-retention-');
after(() => tmp.remove());
const repo = join(tmp.path, 'repo');
const cli = (args: string[]) => runCli(['backup', '--repo', repo, ...args], { OUTRIG_BACKUP_PASSPHRASE: 'readme' });

interface Group {
  host: string;
  source: string;
  keep: { id: string; reasons: string[] }[];
  remove: { id: string }[];
}

test("README's order: create /etc /home, create --disk, prune --keep-daily 7 keeps both", async () => {
  const etc = join(tmp.path, 'etc');
  const home = join(tmp.path, 'home');
  mkdirSync(etc);
  mkdirSync(join(home, 'alice'), { recursive: true });
  writeFileSync(join(etc, 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(home, 'alice', 'notes.txt'), 'notes\n');
  const disk = join(tmp.path, 'vm.raw');
  partitionedExt4(disk, 8, { 'etc/hostname': 'vm\n' });

  assert.equal((await cli(['init'])).code, 0);
  const files = await cli(['create', etc, home, '--json']);
  assert.equal(files.code, 0, files.stderr);
  const filesId = (JSON.parse(files.stdout) as { id: string }).id;
  const image = await cli(['create', '--disk', disk, '--json']);
  assert.equal(image.code, 0, image.stderr);
  const diskId = (JSON.parse(image.stdout) as { id: string }).id;

  const dry = await cli(['prune', '--keep-daily', '7', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as { dryRun: boolean; removed: string[]; groups: Group[] };
  assert.deepEqual(plan.removed, [], 'nothing of one day goes with --keep-daily 7');
  assert.equal(plan.dryRun, true);
  assert.deepEqual(plan.groups.map((g) => g.source).sort(), [`${etc},${home}`, `disk ${disk}`].sort());
  for (const g of plan.groups) assert.match(g.keep[0]!.reasons[0]!, /^daily \d{4}-\d{2}-\d{2}$/);
  const human = await cli(['prune', '--keep-daily', '7', '--dry-run']);
  assert.match(human.stdout, new RegExp(`source ${etc},${home}: keep 1, would remove 0`));
  assert.match(human.stdout, new RegExp(`${filesId.slice(0, 8)} .* keep \\(daily `));
  assert.match(human.stdout, /nothing changed/);

  const pruned = await cli(['prune', '--keep-daily', '7']);
  assert.equal(pruned.code, 0, pruned.stderr);
  const left = (JSON.parse((await cli(['list', '--json'])).stdout) as { id: string }[]).map((s) => s.id);
  assert.deepEqual(left.sort(), [filesId, diskId].sort(), 'both the files snapshot and the disk snapshot survive');

  const bad = await cli(['prune', '--keep-daily', '7', '--group-by', 'host,disk']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--group-by takes host, paths \(or source\) and tags.*not 'disk'/);
});
