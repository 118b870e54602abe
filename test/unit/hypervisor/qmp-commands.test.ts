/**
 * The typed QMP commands against a fake monitor: a UNIX socket that greets like QEMU, records each
 * command it is sent and answers with the reply a test gave for that command.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import {
  balloon,
  blockdevAdd,
  blockdevDel,
  deviceAdd,
  deviceDel,
  qomGetGuestStats,
  qomList,
  qomSet,
  queryBalloon,
  quit,
  systemPowerdown,
} from '../../../src/hypervisor/qmp-commands.ts';
import { QmpClient, QmpError } from '../../../src/hypervisor/qmp.ts';
import { tempDir } from '../../helpers/tmp.ts';

interface Sent {
  execute: string;
  arguments?: Record<string, unknown>;
}

/** What the fake answers per command: a return value, or an error. */
type Answer = { return: unknown } | { error: { class: string; desc: string } };

const dir = tempDir();
const socketPath = join(dir.path, 'qmp.sock');
let server: Server;
let sent: Sent[] = [];
let answers = new Map<string, Answer>();
let client: QmpClient;

function serve(sock: Socket): void {
  sock.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } }) + '\r\n');
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const msg = JSON.parse(buf.slice(0, nl)) as Sent & { id?: unknown };
      buf = buf.slice(nl + 1);
      sent.push({ execute: msg.execute, ...(msg.arguments ? { arguments: msg.arguments } : {}) });
      const answer = answers.get(msg.execute) ?? { return: {} };
      sock.write(JSON.stringify({ ...answer, id: msg.id }) + '\r\n');
    }
  });
}

before(async () => {
  server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  client = await QmpClient.connect(socketPath);
});

after(async () => {
  client.close();
  await new Promise((resolve) => server.close(resolve));
  dir.remove();
});

beforeEach(() => {
  sent = [];
  answers = new Map();
});

test('the connection leaves capability negotiation with qmp_capabilities', async () => {
  const c = await QmpClient.connect(socketPath);
  c.close();
  assert.deepEqual(sent, [{ execute: 'qmp_capabilities' }]);
});

test('commands without a reply send their name and arguments', async () => {
  await balloon(client, 512 * 1024 * 1024);
  await qomSet(client, '/machine/peripheral/balloon0', 'guest-stats-polling-interval', 2);
  await blockdevAdd(client, { driver: 'nbd', 'node-name': 'vol-v1', server: { type: 'unix', path: '/run/nbd.sock' }, export: 'v1', 'reconnect-delay': 30 });
  await blockdevDel(client, 'vol-v1');
  await deviceAdd(client, { driver: 'virtio-blk-pci', id: 'disk-v1', bus: 'rp2', drive: 'vol-v1', serial: 'v1' });
  await deviceDel(client, 'disk-v1');
  await systemPowerdown(client);
  await quit(client);
  assert.deepEqual(sent, [
    { execute: 'balloon', arguments: { value: 536870912 } },
    { execute: 'qom-set', arguments: { path: '/machine/peripheral/balloon0', property: 'guest-stats-polling-interval', value: 2 } },
    {
      execute: 'blockdev-add',
      arguments: { driver: 'nbd', 'node-name': 'vol-v1', server: { type: 'unix', path: '/run/nbd.sock' }, export: 'v1', 'reconnect-delay': 30 },
    },
    { execute: 'blockdev-del', arguments: { 'node-name': 'vol-v1' } },
    { execute: 'device_add', arguments: { driver: 'virtio-blk-pci', id: 'disk-v1', bus: 'rp2', drive: 'vol-v1', serial: 'v1' } },
    { execute: 'device_del', arguments: { id: 'disk-v1' } },
    { execute: 'system_powerdown' },
    { execute: 'quit' },
  ]);
});

test('query-balloon answers the actual size', async () => {
  answers.set('query-balloon', { return: { actual: 1073741824 } });
  assert.deepEqual(await queryBalloon(client), { actual: 1073741824 });
  assert.deepEqual(sent, [{ execute: 'query-balloon' }]);
});

test('qom-get of guest-stats answers the statistics, dropping figures that are not numbers', async () => {
  answers.set('qom-get', { return: { stats: { 'stat-free-memory': 300 * 1024 * 1024, 'stat-disk-caches': 'lots' }, 'last-update': 1700000000 } });
  assert.deepEqual(await qomGetGuestStats(client, '/machine/peripheral/balloon0'), { stats: { 'stat-free-memory': 314572800 }, 'last-update': 1700000000 });
  assert.deepEqual(sent, [{ execute: 'qom-get', arguments: { path: '/machine/peripheral/balloon0', property: 'guest-stats' } }]);
});

test('qom-list answers name and type of each entry', async () => {
  answers.set('qom-list', {
    return: [
      { name: 'type', type: 'string' },
      { name: 'disk-v1', type: 'child<virtio-blk-pci>', description: 'x' },
    ],
  });
  assert.deepEqual(await qomList(client, '/machine/peripheral'), [
    { name: 'type', type: 'string' },
    { name: 'disk-v1', type: 'child<virtio-blk-pci>' },
  ]);
  assert.deepEqual(sent, [{ execute: 'qom-list', arguments: { path: '/machine/peripheral' } }]);
});

test('a reply of the wrong shape is an error naming the command', async () => {
  answers.set('query-balloon', { return: { actual: 'much' } });
  await assert.rejects(queryBalloon(client), /QMP query-balloon: unexpected reply/);
  answers.set('qom-list', { return: { name: 'x' } });
  await assert.rejects(qomList(client, '/machine/peripheral'), /QMP qom-list: unexpected reply/);
  answers.set('qom-list', { return: [{ name: 7, type: 'string' }] });
  await assert.rejects(qomList(client, '/machine/peripheral'), /QMP qom-list: unexpected reply/);
  answers.set('qom-get', { return: { 'last-update': 0 } });
  await assert.rejects(qomGetGuestStats(client, '/machine/peripheral/balloon0'), /QMP qom-get: unexpected reply/);
});

test("QEMU's errors come back as QmpError with their class", async () => {
  answers.set('device_del', { error: { class: 'DeviceNotFound', desc: "Device 'disk-v9' not found" } });
  const e = await deviceDel(client, 'disk-v9').catch((err: unknown) => err);
  assert.ok(e instanceof QmpError);
  assert.equal(e.qmpClass, 'DeviceNotFound');
  assert.equal(e.command, 'device_del');
});
