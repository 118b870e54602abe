/**
 * Issue 18's newcomer mistakes (findings 7, 8, 9 and 11), played against a real controller and
 * agent in this process and a second host whose agent the test plays; the CLI runs as a process of
 * its own, as a user runs it. No VM boots: instances are created stopped, or on the played host.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import type { ApiClient } from '../../src/cli/client.ts';
import type { RunningController } from '../../src/server/index.ts';
import type { Host } from '../../src/model/host.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { MemoryPool } from '../../src/model/memory.ts';
import type { Snapshot, Volume } from '../../src/model/volume.ts';
import { fakeAgent, type FakeAgent } from '../helpers/fake-agent.ts';
import { apiSend } from '../helpers/https.ts';
import { startInProcess, type InProcessCluster } from '../helpers/in-process.ts';
import { runCli, type CliResult } from '../helpers/processes.ts';
import { waitUntil } from '../helpers/wait.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const HOST = 'answers-host';
const OTHER = 'answers-other';

describe("newcomers' mistakes get clear answers", { timeout: 300_000 }, () => {
  let env: InProcessCluster;
  let ctl: RunningController;
  let api: ApiClient;
  let other: FakeAgent;
  let cliEnv: Record<string, string>;

  const cli = (...args: string[]): Promise<CliResult> => runCli(args, cliEnv, 60_000);
  const volume = (ref: string) => api.find<Volume>(`/v1/volumes/${encodeURIComponent(ref)}`);
  const available = (ref: string) => waitUntil(`volume ${ref} available`, async () => (await volume(ref))?.status.phase === 'available', 60_000);

  before(async () => {
    // The played host sends no heartbeats: it must not be declared lost meanwhile.
    env = await startInProcess(HOST, { controller: { lostAfterMs: 600_000 } });
    ({ ctl, api } = env);
    const caFile = join(env.dir.path, 'ca.crt');
    writeFileSync(caFile, ctl.trust.ca.certPem);
    cliEnv = { OUTRIG_URL: ctl.url, OUTRIG_TOKEN: ctl.adminToken, OUTRIG_CA: caFile, OUTRIG_DATA: join(env.dir.path, 'cli') };
    const log = pino({ level: 'warn' }, pino.destination({ dest: join(env.dir.path, 'fake.log'), sync: true }));
    other = await fakeAgent(ctl, OTHER, log, {
      memoryMiB: 2048,
      storage: { totalBytes: 20 * GiB, freeBytes: 10 * GiB, provisionedBytes: 0, mayAllocateBytes: 0 },
    });
    await waitUntil(
      'both hosts ready',
      async () => (await api.get<{ items: Host[] }>('/v1/hosts')).items.filter((h) => h.status.phase === 'ready').length === 2,
    );
  });
  after(async () => {
    other?.close();
    await env?.close();
  });

  describe('finding 7: snapshot names are per volume; volumes go where their instance is', () => {
    test('two volumes each take a snapshot named nightly; a bare name works while it is unambiguous', async () => {
      for (const v of ['data', 'logs']) await api.post('/v1/volumes', { name: v, sizeBytes: 16 * MiB, host: HOST });
      for (const v of ['data', 'logs']) await available(v);
      for (const v of ['data', 'logs']) {
        const r = await cli('volume', 'snapshot', v, 'nightly');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^snapshot nightly of volume ${v}: ready$`, 'm'));
      }
      // The same name twice on one volume is still refused, saying where.
      const again = await cli('volume', 'snapshot', 'data', 'nightly');
      assert.equal(again.code, 1);
      assert.equal(again.stderr, "outrig: volume 'data' already has a snapshot named 'nightly'\n");

      const ambiguous = await cli('volume', 'clone', 'nightly', 'data-copy');
      assert.equal(ambiguous.code, 1);
      assert.equal(
        ambiguous.stderr,
        "outrig: snapshot 'nightly' is ambiguous: 2 volumes have a snapshot of that name (data/nightly, logs/nightly); name one as VOLUME/SNAPSHOT\n",
      );
      assert.equal(await volume('data-copy'), undefined);

      const byPath = await cli('volume', 'clone', 'data/nightly', 'data-copy');
      assert.equal(byPath.code, 0, byPath.stderr);
      const byFlag = await cli('volume', 'clone', 'nightly', 'logs-copy', '--from-volume', 'logs');
      assert.equal(byFlag.code, 0, byFlag.stderr);
      const snaps = await api.get<{ items: Snapshot[] }>('/v1/snapshots');
      const source = async (v: string) => (await volume(v))?.spec.source;
      const data = (await volume('data'))!;
      const logs = (await volume('logs'))!;
      const nightlyOf = (vol: Volume) => snaps.items.find((s) => s.name === 'nightly' && s.spec.volume === vol.id)!.id;
      assert.deepEqual(await source('data-copy'), { snapshot: nightlyOf(data) });
      assert.deepEqual(await source('logs-copy'), { snapshot: nightlyOf(logs) });
      // The API takes VOLUME/SNAPSHOT as a reference too.
      const got = await apiSend<Snapshot>(ctl, 'GET', `/v1/snapshots/${encodeURIComponent('logs/nightly')}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.id, nightlyOf(logs));

      // With one nightly left, the README's command works as written.
      await api.delete(`/v1/volumes/logs-copy`);
      await waitUntil('logs-copy gone', async () => !(await volume('logs-copy')));
      assert.equal((await cli('volume', 'delete-snapshot', 'logs/nightly')).code, 0);
      await waitUntil('logs/nightly gone', async () => (await api.get<{ items: Snapshot[] }>('/v1/snapshots')).items.length === 1);
      const plain = await cli('volume', 'clone', 'nightly', 'data-copy2');
      assert.equal(plain.code, 0, plain.stderr);
      assert.deepEqual(await source('data-copy2'), { snapshot: nightlyOf(data) });
    });

    test('volume delete: one with snapshots names them and --recursive; --recursive deletes them with it', async () => {
      await api.post('/v1/volumes', { name: 'scratch', sizeBytes: 16 * MiB, host: HOST });
      await available('scratch');
      for (const s of ['a', 'b']) assert.equal((await cli('volume', 'snapshot', 'scratch', s)).code, 0);
      const refused = await cli('volume', 'delete', 'scratch');
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr,
        "outrig: volume 'scratch' has snapshots: a, b; delete them first, or delete the volume with them (recursive: outrig volume delete scratch --recursive)\n",
      );
      assert.equal((await volume('scratch'))?.status.phase, 'available');

      const r = await cli('volume', 'delete', 'scratch', '--recursive');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^volume scratch deleted$/m);
      const left = (await api.get<{ items: Snapshot[] }>('/v1/snapshots')).items.filter((s) => s.name === 'a' || s.name === 'b');
      await waitUntil('its snapshots gone', async () =>
        (await api.get<{ items: Snapshot[] }>('/v1/snapshots')).items.every((s) => !left.some((l) => l.id === s.id)),
      );
    });

    test('a volume made --for an instance lands on its host; attaching one from elsewhere says --for and --host', async () => {
      const inst = await api.post<Instance>('/v1/instances', { name: 'app3', image: 'test', vcpus: 1, memoryMiB: 64, start: false });
      const hostOf = await waitUntil('app3 placed', async () => (await api.get<Instance>(`/v1/instances/${inst.id}`)).status.hostName);
      const elsewhere = hostOf === HOST ? OTHER : HOST;
      await api.post('/v1/volumes', { name: 'xv', sizeBytes: 16 * MiB, host: elsewhere });
      await waitUntil('xv placed', async () => (await volume('xv'))?.status.hostName);
      const apart = await cli('volume', 'attach', 'xv', 'app3');
      assert.equal(apart.code, 1);
      assert.equal(
        apart.stderr,
        `outrig: volume 'xv' is on host ${elsewhere}, instance app3 on ${hostOf}: a volume is attached on its own host; make one there (outrig volume create NAME --size SIZE --for app3, or --host ${hostOf})\n`,
      );
      const made = await cli('volume', 'create', 'xv2', '--size', '16M', '--for', 'app3', '--no-wait');
      assert.equal(made.code, 0, made.stderr);
      assert.equal(await waitUntil('xv2 placed', async () => (await volume('xv2'))?.status.hostName), hostOf);
      for (const v of ['xv', 'xv2']) await api.delete(`/v1/volumes/${v}`);
    });
  });

  describe('finding 8: wrong input is refused', () => {
    test('a qcow2 imported --format raw is refused, naming --format; nothing is imported', async () => {
      const file = join(env.dir.path, 'disk.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '4M']);
      const r = await cli('image', 'import', file, '--format', 'raw', '--name', 'myos');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /it is a qcow2 image \(it starts with the qcow2 magic 'QFI\\xfb'\), not raw: import it with --format qcow2 or without --format/);
      assert.equal(await api.find('/v1/images/myos'), undefined);
    });

    test('a volume far beyond every host is refused at once, saying how far beyond the largest free space it goes', async () => {
      const free = (await api.get<Host>(`/v1/hosts/${HOST}`)).status.storage!.freeBytes;
      const r = await cli('volume', 'create', 'd3', '--size', '100T');
      assert.equal(r.code, 1);
      const times = Math.round((100 * 1024 * GiB) / Math.max(free, 10 * GiB));
      assert.match(r.stderr, /^outrig: no host can ever hold a volume of 100 TiB \(it may allocate 100 TiB with its journal\): /);
      assert.match(
        r.stderr,
        new RegExp(`; that is ${times} times the most free space of a host \\(.+\\), past the disk overcommit of 1 \\(controller --disk-overcommit\\)\\n$`),
      );
      assert.equal(await volume('d3'), undefined);

      // With every host cordoned it cannot wait for one either: refused all the same. One that could fit once a host is back waits.
      for (const h of [HOST, OTHER]) await api.post(`/v1/hosts/${h}/cordon`);
      try {
        const cordoned = await apiSend(ctl, 'POST', '/v1/volumes', { name: 'd3', sizeBytes: 100 * 1024 * GiB });
        assert.equal(cordoned.status, 422, JSON.stringify(cordoned.body));
        assert.equal(cordoned.body.error?.code, 'insufficient_storage');
        const waits = await apiSend<Volume>(ctl, 'POST', '/v1/volumes', { name: 'd5', sizeBytes: 16 * MiB });
        assert.equal(waits.status, 201, JSON.stringify(waits.body));
        assert.equal(waits.body.status?.phase, 'pending');
      } finally {
        for (const h of [HOST, OTHER]) await api.post(`/v1/hosts/${h}/uncordon`);
      }
      await waitUntil('d5 placed', async () => (await volume('d5'))?.status.hostId);
      await api.delete('/v1/volumes/d5');
    });

    test('memory tiers larger than the hosts can back are refused unless --allow-unbacked; sized ones are taken', async () => {
      const hosts = (await api.get<{ items: Host[] }>('/v1/hosts')).items;
      const most = Math.max(...hosts.map((h) => h.status.inventory!.memory.totalMiB));
      const local = `${Math.ceil((most + 1024) / 1024)}G`;
      const before = (await api.get<MemoryPool>('/v1/memory/pools/default')).spec;
      const r = await cli('memory', 'pool', 'set', 'default', '--tier', `local:${local}`, '--tier', 'cxl:pooled:256G', '--overcommit', '1.5');
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        new RegExp(
          `^outrig: tier local gives up to ${local.replace('G', '')} GiB of each host, more than any host of pool default has \\(the most: .+\\); tier cxl is 256 GiB of pooled memory, more than the 2 host\\(s\\) of pool default have together \\(.+\\): size the tiers to the hosts \\(see: outrig host list\\), or keep them with --allow-unbacked`,
        ),
      );
      assert.deepEqual((await api.get<MemoryPool>('/v1/memory/pools/default')).spec, before);

      // The README's command.
      const readme = await cli('memory', 'pool', 'set', 'default', '--tier', 'local', '--tier', 'cxl:pooled:2G', '--overcommit', '1.5');
      assert.equal(readme.code, 0, readme.stderr);
      const forced = await cli('memory', 'pool', 'set', 'default', '--tier', `local:${local}`, '--tier', 'cxl:pooled:256G', '--allow-unbacked');
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal((await api.get<MemoryPool>('/v1/memory/pools/default')).spec.tiers.find((t) => t.name === 'cxl')?.capacityMiB, 256 * 1024);
      await api.patch('/v1/memory/pools/default', { tiers: before.tiers, maxOvercommit: before.maxOvercommit });
    });
  });

  describe('finding 9: errors name the flag or argument, and check what exists first', () => {
    const refusals: [string, string[], RegExp][] = [
      ['a volume without --size', ['volume', 'create', 'd4'], /^outrig: --size is required for an empty volume\n$/],
      ['--memory 0', ['instance', 'create', 'm0', '--image', 'test', '--memory', '0', '--no-start'], /^outrig: --memory must be at least 64 MiB\n$/],
      [
        'a bad name',
        ['volume', 'create', 'Bad_Name', '--size', '16M'],
        /^outrig: NAME must be 1 to 63 lower-case letters, digits and dashes, starting and ending with a letter or digit \(like web-1\)\n$/,
      ],
      ['a size below the minimum', ['volume', 'create', 'tiny', '--size', '4096'], /^outrig: --size must be at least 1 MiB\n$/],
    ];
    for (const [what, args, message] of refusals) {
      test(`${what}: said in the command's terms, a usage error (exit 2)`, async () => {
        const r = await cli(...args);
        assert.match(r.stderr, message);
        assert.equal(r.code, 2);
        assert.equal(r.stdout, '');
      });
    }

    test('tenant create: an existing tenant or an unknown pool is the answer, not a missing --limit', async () => {
      assert.equal((await cli('tenant', 'create', 'acme')).code, 0);
      const exists = await cli('tenant', 'create', 'acme', '--pool', 'default');
      assert.equal(exists.stderr, "outrig: tenant 'acme' already exists (see: outrig tenant show acme; change its memory with outrig tenant set)\n");
      assert.equal(exists.code, 1);
      const typo = await cli('tenant', 'create', 'acme2', '--pool', 'defualt');
      assert.equal(typo.stderr, "outrig: no such memory pool 'defualt' (--pool; see: outrig memory pool list)\n");
      assert.equal(typo.code, 2);
      // The API too answers "exists" before judging the rest of the request.
      const api409 = await apiSend(ctl, 'POST', '/v1/tenants', { name: 'acme', memory: [{ pool: 'default', guaranteedMiB: 2048, limitMiB: 1024 }] });
      assert.equal(api409.status, 409);
      assert.equal(api409.body.error?.message, "tenant 'acme' already exists");
      const api422 = await apiSend(ctl, 'POST', '/v1/tenants', { name: 'acme3', memory: [{ pool: 'defualt', guaranteedMiB: 2048, limitMiB: 1024 }] });
      assert.equal(api422.status, 422);
      assert.equal(api422.body.error?.message, "memory pool 'defualt' does not exist (see: outrig memory pool list)");
    });

    test('disk info of a missing file says it does not exist, without ENOENT', async () => {
      const missing = join(env.dir.path, 'nonexist');
      const r = await cli('disk', 'info', missing);
      assert.equal(r.stderr, `outrig: file '${missing}' does not exist\n`);
      assert.equal(r.code, 1);
    });

    test('image import under a taken name is refused before converting anything', async () => {
      const file = join(env.dir.path, 'small.raw');
      writeFileSync(file, Buffer.alloc(MiB));
      const r = await cli('image', 'import', file, '--name', 'test');
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /^outrig: image 'test' already exists \(img-\w+, made [^)]+\); use --replace to replace it, or --name to import under another name\n$/,
      );
      assert.doesNotMatch(r.stderr, /converting/);
    });
  });

  describe('finding 11: --json errors, delete --force', () => {
    test('with --json an error is {"error":{...}} on stdout, with the same exit code', async () => {
      const usage = await cli('--json', 'volume', 'create', 'd4');
      assert.equal(usage.code, 2);
      assert.equal(usage.stderr, '');
      const body = JSON.parse(usage.stdout) as { error: { code: string; message: string; details: unknown } };
      assert.equal(body.error.code, 'invalid_request');
      assert.equal(body.error.message, '--size is required for an empty volume');
      assert.deepEqual(body.error.details, [{ path: 'body.sizeBytes', field: 'sizeBytes', problem: 'is required for an empty volume' }]);

      const missing = await cli('--json', 'volume', 'show', 'nosuch');
      assert.equal(missing.code, 1);
      assert.deepEqual(JSON.parse(missing.stdout), { error: { code: 'not_found', message: "Volume 'nosuch' not found" } });

      const unknown = await cli('--json', 'volume', 'frobnicate');
      assert.equal(unknown.code, 2);
      assert.equal(unknown.stderr, '');
      assert.deepEqual(JSON.parse(unknown.stdout), { error: { code: 'usage', message: "unknown command 'frobnicate'" } });
    });

    test('deleting a running instance needs --force; without it nothing changes', async () => {
      // On the played host: its VM "starts" (the start operation is sent and never answered), no guest boots.
      await api.post(`/v1/hosts/${HOST}/cordon`);
      try {
        await api.post('/v1/instances', { name: 'busy1', image: 'test', vcpus: 1, memoryMiB: 64 });
        await waitUntil('busy1 starting', async () => (await api.get<Instance>('/v1/instances/busy1')).status.phase === 'starting');
      } finally {
        await api.post(`/v1/hosts/${HOST}/uncordon`);
      }
      const refused = await cli('instance', 'delete', 'busy1', '--no-wait');
      assert.equal(refused.code, 1);
      assert.equal(
        refused.stderr,
        'outrig: instance busy1 is starting: stop it first (outrig instance stop busy1), or delete it running with --force (force=true)\n',
      );
      assert.equal((await api.get<Instance>('/v1/instances/busy1')).status.phase, 'starting');
      const forced = await cli('instance', 'delete', 'busy1', '--force', '--no-wait');
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal((await api.get<Instance>('/v1/instances/busy1')).status.phase, 'deleting');
    });
  });
});
