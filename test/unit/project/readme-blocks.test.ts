import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { placeholders, readmeCommands, stripComment } from '../../helpers/readme-blocks.ts';

test('commands of README blocks: comments dropped, continuations joined, machines followed', () => {
  const md = [
    '## A',
    '```sh',
    'x one   # says # things',
    "y --s '0 # 2' \\",
    '  --t 3',
    '# on every new server: z',
    'z <token>',
    '# on the controller machine',
    'w',
    '```',
    '## B',
    '```sh',
    'skipped',
    '```',
  ].join('\n');
  assert.deepEqual(readmeCommands(md, ['A']), [
    { section: 'A', machine: 'controller', line: 'x one' },
    { section: 'A', machine: 'controller', line: "y --s '0 # 2' --t 3" },
    { section: 'A', machine: 'new-server', line: 'z <token>' },
    { section: 'A', machine: 'controller', line: 'w' },
  ]);
  assert.equal(stripComment('echo "a # b" # c'), 'echo "a # b"');
  assert.deepEqual(placeholders('curl http://127.0.0.1:<forwarded port>/ <host>'), ['forwarded port', 'host']);
});

test("the README's walked sections use the CLI as a checkout has it (npx outrig), never a bare outrig", () => {
  const md = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const cmds = readmeCommands(md, ['Using it', 'A cluster of several servers', 'Networks']);
  assert.ok(cmds.length > 20);
  const bare = cmds.filter((c) => /(^|[;&|]\s*)outrig\b/.test(c.line));
  assert.deepEqual(bare, []);
});
