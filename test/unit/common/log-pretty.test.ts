import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import { defaultLogFormat, prettyLine, prettyStream } from '../../../src/common/log-pretty.ts';

test('a JSON log line becomes time, level, name, message and plain key=value pairs', () => {
  const line = JSON.stringify({
    level: 30,
    time: Date.UTC(2026, 11, 7, 12, 4, 5),
    pid: 1,
    hostname: 'x',
    name: 'agent',
    msg: 'joined',
    host: 'h1',
    url: 'https://10.0.0.1:7440',
    n: 3,
  });
  assert.equal(prettyLine(line), '12:04:05 INFO  agent: joined host=h1 url=https://10.0.0.1:7440 n=3');
});

test('what a guest or the LAN put in a log line cannot drive the terminal', () => {
  const evil = '\u001b]52;c;cGF5bG9hZA==\u0007\u009b2J';
  const out = prettyLine(JSON.stringify({ level: 40, time: 0, name: 'agent', msg: `console: ${evil}`, line: evil, err: { message: `bad ${evil}` } }));
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(out, /[\u0000-\u001f\u007f-\u009f]/);
  assert.match(out, /WARN {2}agent: console: \\x1b\]52;c;cGF5bG9hZA==\\x07\\x9b2J/);
  assert.match(out, /line="\\u001b\]52/);
  assert.match(out, /err="bad \\u001b/);
  assert.equal(prettyLine('not json \u001b[2J'), 'not json \\x1b[2J');
});

test('pino writes through the pretty stream line by line; a terminal gets pretty, a pipe JSON', async () => {
  const got: string[] = [];
  const sink = new Writable({
    write: (c: Buffer, _e, done) => {
      got.push(c.toString());
      done();
    },
  });
  const log = pino({ name: 'controller' }, prettyStream(sink));
  log.info({ host: 'h2' }, 'approved');
  log.error('second');
  await new Promise((r) => setImmediate(r));
  assert.equal(got.length, 2);
  assert.match(got[0]!, /^\d\d:\d\d:\d\d INFO {2}controller: approved host=h2\n$/);
  assert.match(got[1]!, /ERROR controller: second\n$/);
  assert.equal(defaultLogFormat({ isTTY: true }), 'pretty');
  assert.equal(defaultLogFormat({}), 'json');
});
