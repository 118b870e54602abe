/**
 * What a stranger with no credentials can do to the hosts table through the public discovery and
 * enrollment routes: fill it (a cap and an expiry stop that, and an operator rejects or deletes
 * waiting hosts), or enroll under a waiting host's name as its id to be approved in its place.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { enroll } from '../../src/agent/enroll.ts';
import { ApiClient, ApiRequestError } from '../../src/cli/client.ts';
import { createLogger } from '../../src/common/log.ts';
import { startController, type ControllerConfig, type RunningController } from '../../src/server/index.ts';
import { openStore } from '../../src/store/index.ts';
import type { Host } from '../../src/model/host.ts';
import { generateKeyPair } from '../../src/pki/index.ts';
import { capturingLog } from '../helpers/log.ts';
import { stranger } from '../helpers/stranger.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('the hosts table against strangers', () => {
  const dir = tempDir();
  const running: RunningController[] = [];

  const boot = async (name: string, extra: Partial<ControllerConfig> = {}) => {
    const ctl = await startController({
      dataDir: join(dir.path, name),
      host: '127.0.0.1',
      port: 0,
      log: createLogger('test', { file: join(dir.path, `${name}.log`) }),
      ...extra,
    });
    running.push(ctl);
    const api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
    const as = (hostId: string) => stranger({ url: ctl.url, caPem: ctl.trust.ca.certPem, caFingerprint: ctl.trust.ca.fingerprint }, hostId);
    const hosts = async () => (await api.get<{ items: Host[] }>('/v1/hosts')).items;
    return { ctl, api, as, hosts };
  };
  let main: Awaited<ReturnType<typeof boot>>;

  before(async () => {
    main = await boot('main');
  });

  after(async () => {
    for (const c of running) await c.close();
    dir.remove();
  });

  const refusal = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => assert.fail('expected a refusal'),
      (x: unknown) => x,
    );
    assert.ok(e instanceof ApiRequestError, String(e));
    return e;
  };

  test('waiting hosts are capped: beyond the cap a request is refused (429) and stores nothing; an operator rejects or deletes waiting hosts', async () => {
    // 'pendingHosts' is the controller's --max-pending-hosts (default 200); a cap of 3 plays the flood quickly.
    const { ctl, api, as, hosts } = await boot('capped', { pendingHosts: { max: 3 } });
    const flood = ['h-flood-1', 'h-flood-2', 'h-flood-3', 'h-flood-4'].map(as);
    const nonces = await Promise.all(flood.map((s) => s.nonce()));
    for (let i = 0; i < 3; i++) assert.equal((await flood[i]!.enroll({ nonce: nonces[i] })).status, 202);
    const over = await flood[3]!.enroll({ nonce: nonces[3] });
    assert.deepEqual([over.status, over.code], [429, 'too_many_pending']);
    assert.deepEqual((await hosts()).map((h) => h.id).sort(), ['h-flood-1', 'h-flood-2', 'h-flood-3'], 'the refused request stored nothing');

    // A host with a bootstrap token is not held up by the queue.
    const { token } = await api.post<{ token: string }>('/v1/enrollment-rules', { name: 'while-full', kind: 'token' });
    const invited = as('h-invited-while-full');
    assert.equal((await invited.enroll({ nonce: await invited.nonce(), bootstrapToken: token })).status, 201);

    // The operator clears the queue: a rejected host stays refused, a deleted one is forgotten.
    assert.equal((await api.post<Host>('/v1/hosts/h-flood-1/reject')).status.phase, 'rejected');
    const gone = await api.raw('DELETE', '/v1/hosts/h-flood-2');
    assert.equal(gone.status, 204);
    assert.equal(await api.find('/v1/hosts/h-flood-2'), undefined);
    assert.equal((await flood[0]!.enroll({})).code, 'rejected');
    // The refused request's nonce stayed good: the same request now waits.
    assert.equal((await flood[3]!.enroll({ nonce: nonces[3] })).status, 202);
    assert.deepEqual(
      (await hosts())
        .filter((h) => h.status.phase === 'pending-approval')
        .map((h) => h.id)
        .sort(),
      ['h-flood-3', 'h-flood-4'],
    );
    // Deleting a trusted host (here: never connected, nothing on it) revokes its certificate first.
    const serial = (await api.get<Host>('/v1/hosts/h-invited-while-full')).status.trust!.certSerial!;
    assert.equal((await api.raw('DELETE', '/v1/hosts/h-invited-while-full')).status, 204);
    assert.equal((await ctl.store.certificates.find(serial))?.status.phase, 'revoked');
    assert.equal((await refusal(api.delete('/v1/hosts/h-no-such-host'))).status, 404);
  });

  test('a request for approval expires; an agent still waiting asks again and can then be approved', { timeout: 60_000 }, async () => {
    const { ctl, api, as } = await boot('expiring', { pendingHosts: { ttlMs: 2500 } });
    const script = as('h-gone-script');
    assert.equal((await script.enroll({ nonce: await script.nonce() })).status, 202);
    await waitUntil('the abandoned request to expire', async () => (await api.find<Host>('/v1/hosts/h-gone-script')) === undefined, 15_000, 100);

    const { log, lines } = capturingLog();
    const joining = enroll({
      identity: { hostId: 'h-patient-agent', name: 'patient', keys: generateKeyPair() },
      mode: { kind: 'direct', controllerUrl: ctl.url, caPem: ctl.trust.ca.certPem },
      log,
    });
    await waitUntil('the agent to ask again after its request expired', () => lines().some((l) => l.includes('discovering again')), 30_000, 50);
    await waitUntil(
      'the agent to wait again',
      async () => (await api.find<Host>('/v1/hosts/h-patient-agent'))?.status.phase === 'pending-approval',
      10_000,
      20,
    );
    await api.post('/v1/hosts/h-patient-agent/approve');
    assert.match((await joining).certPem, /BEGIN CERTIFICATE/);
  });

  test("an enrolling host cannot take a waiting host's name as its id; an ambiguous reference is refused, never guessed", async () => {
    const { api, as } = main;
    const victim = as('h-victim-alpha');
    assert.equal((await victim.enroll({ nonce: await victim.nonce({ name: 'alpha' }), name: 'alpha' })).status, 202);
    // The attack: enroll with the victim's name as host id, so that 'approve alpha' finds the attacker.
    const attacker = as('alpha');
    const r = await attacker.enroll({ nonce: await attacker.nonce({ name: 'zzz' }), name: 'zzz' });
    assert.equal(r.status, 409);
    assert.equal(
      (await main.hosts()).some((h) => h.id === 'alpha'),
      false,
    );
    const approved = await api.post<Host>('/v1/hosts/alpha/approve');
    assert.equal(approved.id, 'h-victim-alpha');

    // Hosts stored before ids and names were kept apart may still collide: such a reference is refused.
    // Such rows are in the store when the controller starts (its store keeps every table in memory
    // from then on), so the old row is written while this controller is stopped.
    const legacy = await boot('legacy');
    const owner = legacy.as('h-owner-of-beta');
    assert.equal((await owner.enroll({ nonce: await owner.nonce({ name: 'beta' }), name: 'beta' })).status, 202);
    await legacy.ctl.close();
    running.splice(running.indexOf(legacy.ctl), 1);
    const now = new Date().toISOString();
    const status = { phase: 'pending-approval', conditions: [], agent: { connected: false }, trust: { state: 'pending', publicKey: 'x', requestedAt: now } };
    const db = await openStore({ kind: 'sqlite', path: join(dir.path, 'legacy', 'outrig.db') });
    await db.db
      .insertInto('hosts')
      .values({
        id: 'beta',
        name: 'old-beta',
        labels: '{}',
        annotations: '{}',
        spec: '{"cordoned":false}',
        status: JSON.stringify(status),
        created_at: now,
        updated_at: now,
        generation: 1,
        resource_version: 1,
      })
      .execute();
    await db.close();
    const { api: legacyApi } = await boot('legacy');
    for (const action of ['approve', 'reject']) {
      const e = await refusal(legacyApi.post(`/v1/hosts/beta/${action}`));
      assert.deepEqual([e.status, e.code], [409, 'ambiguous_ref']);
      assert.match(e.message, /id h-owner-of-beta named beta.*id beta named old-beta|id beta named old-beta.*id h-owner-of-beta named beta/);
    }
    assert.equal((await legacyApi.get<Host>('/v1/hosts/h-owner-of-beta')).status.phase, 'pending-approval', 'nothing was approved or rejected');
    assert.equal((await legacyApi.get<Host>('/v1/hosts/old-beta')).status.phase, 'pending-approval');
  });
});
