/**
 * A segment id is freed only once every host that carried the network has confirmed its devices
 * are gone (issue 16, finding 6), through the API of a real controller. A host whose record is
 * deleted never confirms: the network waits in `deleting`, its segment stays reserved, until the
 * host enrolls again and removes them or an operator vouches for it (`network forget-host`). On
 * main before the fix (b8fa89d) the network went at once and its segment was handed to the next
 * network while the machine could still have ovx4000, which would have joined the two networks.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiClient } from '../../src/cli/client.ts';
import { createLogger } from '../../src/common/log.ts';
import { startController, type RunningController } from '../../src/server/index.ts';
import type { Network } from '../../src/model/network.ts';
import { apiSend } from '../helpers/https.ts';
import { stranger } from '../helpers/stranger.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('segment ids of networks on deleted hosts', () => {
  const dir = tempDir();
  let ctl: RunningController;
  let api: ApiClient;

  before(async () => {
    ctl = await startController({
      dataDir: join(dir.path, 'controller'),
      host: '127.0.0.1',
      port: 0,
      log: createLogger('test', { file: join(dir.path, 'controller.log') }),
    });
    api = new ApiClient(ctl.url, { ca: ctl.trust.ca.certPem, token: ctl.adminToken });
  });
  after(async () => {
    await ctl?.close();
    dir.remove();
  });

  const send = (method: string, path: string, body?: unknown) => apiSend<Network>(ctl, method, path, body);

  const enrolled = async (hostId: string) => {
    const { token } = await ctl.trust.addRule(`rule-${hostId}`, { kind: 'token' });
    const h = stranger({ url: ctl.url, caPem: ctl.trust.ca.certPem, caFingerprint: ctl.trust.ca.fingerprint }, hostId);
    assert.equal((await h.enroll({ nonce: await h.nonce(), bootstrapToken: token })).status, 201);
  };
  /** A network that `hostId` carried: the entry the network reconciler wrote when the host had a guest on it and answered network.ensure. */
  const carriedBy = async (name: string, subnet: string, segment: number, hostId: string) => {
    const created = await send('POST', '/v1/networks', { name, subnet, segment });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await ctl.store.networks.updateStatus(
      created.body.id!,
      (cur) => ({
        status: {
          ...cur.status,
          hosts: [{ hostId, hostName: hostId, peers: [], state: 'ready', opId: `${cur.id}/${hostId}/1`, at: new Date().toISOString() }],
        },
      }),
      'other',
    );
  };

  test("a network on a deleted host keeps its segment until an operator vouches that the host's devices are gone", async () => {
    await enrolled('h-old');
    await carriedBy('reuse-a', '10.40.0.0/24', 4000, 'h-old');
    assert.equal((await send('DELETE', '/v1/hosts/h-old')).status, 204);
    assert.equal((await send('DELETE', '/v1/networks/reuse-a')).status, 202);
    const reuse = await send('POST', '/v1/networks', { name: 'reuse-b', subnet: '10.41.0.0/24', segment: 4000 });
    assert.equal(reuse.status, 409, `segment 4000 was handed out again: ${JSON.stringify(reuse.body)}`);
    assert.match(reuse.body.error?.message ?? '', /segment 4000 is in use by network reuse-a/);
    const waiting = await api.get<Network>('/v1/networks/reuse-a');
    assert.equal(waiting.status.phase, 'deleting');
    assert.match(waiting.status.message ?? '', /deleted host h-old never confirmed removing segment 4000: it stays reserved/);
    assert.match(waiting.status.hosts[0]?.error ?? '', /outrig network forget-host reuse-a h-old/);

    const forgotten = await send('DELETE', '/v1/networks/reuse-a/hosts/h-old');
    assert.equal(forgotten.status, 200, JSON.stringify(forgotten.body));
    await waitUntil('reuse-a gone', async () => (await send('GET', '/v1/networks/reuse-a')).status === 404);
    assert.equal((await send('POST', '/v1/networks', { name: 'reuse-b', subnet: '10.41.0.0/24', segment: 4000 })).status, 201);
  });

  test('nobody may vouch for a host that still has a record (it confirms by itself), nor for one the network never had; a refusal changes nothing', async () => {
    await enrolled('h-live');
    await carriedBy('live-a', '10.42.0.0/24', 4001, 'h-live');
    const before = await api.get<Network>('/v1/networks/live-a');
    const r = await send('DELETE', '/v1/networks/live-a/hosts/h-live');
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.error?.code, 'host_exists');
    assert.match(r.body.error?.message ?? '', /host h-live still has a record: it confirms removing segment 4001 itself when it connects/);
    const unknown = await send('DELETE', '/v1/networks/live-a/hosts/nobody');
    assert.deepEqual([unknown.status, unknown.body.error?.code], [404, 'not_found']);
    assert.deepEqual(await api.get<Network>('/v1/networks/live-a'), before);
  });
});
