import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '../../../src/common/log.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { waitUntil } from '../../helpers/wait.ts';

const tmp = tempDir('outrig-log-');
after(() => tmp.remove());

test('secrets are redacted, also inside the operations that carry them', async () => {
  const file = join(tmp.path, 'log.json');
  const log = createLogger('test', { file });
  log.info({ op: { kind: 'backup.create', repository: { path: '/r', passphrase: 'scope-secret-1' } } }, 'sent');
  log.info({ op: { kind: 'volume.ensure', source: { backup: { repository: { path: '/r', passphrase: 'scope-secret-2' } } } } }, 'sent');
  log.info({ join: { bootstrapToken: 'token-secret-3' }, passphrase: 'top-secret-4' }, 'x');
  log.info('the end');
  await waitUntil('the log written', () => existsSync(file) && readFileSync(file, 'utf8').includes('the end'));
  const text = readFileSync(file, 'utf8');
  assert.match(text, /backup\.create/);
  for (const s of ['scope-secret-1', 'scope-secret-2', 'token-secret-3', 'top-secret-4']) assert.ok(!text.includes(s), `${s} was logged`);
});
