/**
 * Every route of the OpenAPI document, walked as a caller with no credentials, with a wrong admin
 * token and with a client certificate of another CA: each answers 401 or 403, but the documented
 * public ones (/healthz, the OpenAPI document, the CRL, discover and enroll). The agent stream and
 * the metrics, the health check and the document itself, which it does not list, are walked too.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createLogger } from '../../src/common/log.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import { ClusterCa, generateKeyPair } from '../../src/pki/index.ts';
import { tlsFetch } from '../helpers/https.ts';
import { runCli } from '../helpers/processes.ts';
import { tempDir } from '../helpers/tmp.ts';

const PUBLIC = new Set(['GET /healthz', 'GET /v1/openapi.json', 'GET /v1/pki/crl', 'POST /v1/discover', 'POST /v1/enroll']);

const dir = tempDir('outrig-api-auth-');
let ctl: RunningController;
let routes: string[];

before(async () => {
  ctl = await startController({
    dataDir: join(dir.path, 'controller'),
    host: '127.0.0.1',
    port: 0,
    log: createLogger('test', { file: join(dir.path, 'test.log') }),
  });
  const doc = (await (await tlsFetch(`${ctl.url}/v1/openapi.json`, { tls: { ca: ctl.trust.ca.certPem } })).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  routes.push('GET /healthz', 'GET /v1/openapi.json', 'GET /metrics', 'GET /v1/agent/stream');
});
after(async () => {
  await ctl?.close();
  dir.remove();
});

/** A path of the document with its parameters filled (`{ref}` → a name that could exist). */
const concrete = (path: string) => path.replace(/\{[^}]+\}/g, 'x');

async function status(route: string, o: { token?: string; cert?: { cert: string; key: string } }): Promise<number> {
  const [method, path] = route.split(' ') as [string, string];
  const hasBody = !['GET', 'DELETE', 'HEAD'].includes(method);
  const res = await tlsFetch(`${ctl.url}${concrete(path)}`, {
    tls: { ca: ctl.trust.ca.certPem, ...(o.cert ?? {}) },
    token: o.token,
    method,
    headers: hasBody ? { 'content-type': 'application/json' } : {},
    body: hasBody ? '{}' : undefined,
  });
  await res.arrayBuffer();
  return res.status;
}

test('the OpenAPI document lists the API', () => {
  assert.ok(routes.length > 60, `only ${routes.length} routes`);
  for (const p of PUBLIC) assert.ok(routes.includes(p), `${p} is not in the document`);
});

test('without credentials, with a wrong token, and with a foreign client certificate, every route but the public ones answers 401 or 403', async () => {
  // An operator certificate, as the cluster would issue one, but from another CA.
  const foreign = await ClusterCa.loadOrCreate(join(dir.path, 'foreign-ca'), 'Foreign CA');
  const key = generateKeyPair();
  const cert = await foreign.issue('operator', { name: 'intruder' }, key.publicKey, 1);
  const callers: [string, Parameters<typeof status>[1]][] = [
    ['no credentials', {}],
    ['a wrong token', { token: 'not-the-admin-token' }],
    ['an empty bearer', { token: '' }],
    ['an operator certificate of another CA', { cert: { cert: cert.pem, key: key.privateKey } }],
  ];
  const open: string[] = [];
  for (const [who, creds] of callers) {
    for (const r of routes) {
      if (PUBLIC.has(r)) continue;
      const s = await status(r, creds);
      if (s !== 401 && s !== 403) open.push(`${r} answered ${s} to ${who}`);
    }
  }
  assert.deepEqual(open, []);
});

test('the public routes answer without credentials', async () => {
  for (const r of ['GET /healthz', 'GET /v1/openapi.json', 'GET /v1/pki/crl']) assert.equal(await status(r, {}), 200, r);
});

test('a CLI run with another OUTRIG_DATA is told the API answered and which CA it trusted, not that the API is unreachable', async () => {
  const other = join(dir.path, 'elsewhere');
  const r = await runCli(['host', 'list'], { OUTRIG_DATA: other, OUTRIG_URL: ctl.url });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /answered, but its certificate is not signed by the CA this CLI trusts/);
  assert.ok(r.stderr.includes(join(other, 'ca.crt')), r.stderr);
  assert.match(r.stderr, /same OUTRIG_DATA as 'outrig up'/);
  assert.doesNotMatch(r.stderr, /cannot reach/);
});

test('CLI errors are clear and exit non-zero', async () => {
  const env = { OUTRIG_DATA: join(dir.path, 'controller-cli'), OUTRIG_URL: ctl.url, OUTRIG_CA: join(dir.path, 'ca.crt'), OUTRIG_TOKEN: ctl.adminToken };
  writeFileSync(env.OUTRIG_CA, ctl.trust.ca.certPem);
  const bad = await runCli(['instance', 'create', 'x1', '--image', 'nosuch'], env);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /image 'nosuch' does not exist/);
  const usage = await runCli(['instance', 'create', 'x1', '--image', 'test', '--vcpus', 'two'], env);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--vcpus must be a whole number/);
  const away = await runCli(['host', 'list'], { ...env, OUTRIG_URL: 'http://127.0.0.1:1' });
  assert.equal(away.code, 1);
  assert.match(away.stderr, /cannot reach the Outrig API at http:\/\/127\.0\.0\.1:1/);
});
