import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CliError } from '../../../src/cli/errors.ts';
import { parseIntIn, parseIntStrict, parseLabels, parseListen, parseMemory } from '../../../src/cli/parse.ts';

test('memory sizes', () => {
  assert.equal(parseMemory('256'), 256);
  assert.equal(parseMemory('512M'), 512);
  assert.equal(parseMemory('2G'), 2048);
  assert.equal(parseMemory('1GiB'), 1024);
  assert.throws(() => parseMemory('lots'), CliError);
});

test('integers, labels and listen addresses', () => {
  assert.equal(parseIntStrict('--vcpus')('4'), 4);
  assert.throws(() => parseIntStrict('--vcpus')('4.5'), /--vcpus must be a whole number/);
  assert.deepEqual(parseLabels(['a=b', 'c=d=e']), { a: 'b', c: 'd=e' });
  assert.throws(() => parseLabels(['nokey']), /key=value/);
  assert.deepEqual(parseListen('0.0.0.0:80', '127.0.0.1'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseListen(':7440', '127.0.0.1'), { host: '127.0.0.1', port: 7440 });
  assert.deepEqual(parseListen('[::1]:7440', '127.0.0.1'), { host: '::1', port: 7440 });
});

test('whole numbers within a range: limits cannot be switched off by 0 or a negative', () => {
  assert.equal(parseIntIn('--max-connections', 1, 100)('100'), 100);
  assert.throws(() => parseIntIn('--max-connections', 1, 100)('0'), /--max-connections must be from 1 to 100, got '0'/);
  assert.throws(() => parseIntIn('--max-connections', 1, 100)('-5'), CliError);
  assert.throws(() => parseIntIn('--max-connections', 1, 100)('1e3'), /whole number/);
});
