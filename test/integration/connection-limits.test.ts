/**
 * Connection exhaustion against a real controller on loopback: sockets without credentials, or
 * with a host certificate but no hello, must not hold the TLS port. Source addresses 127.0.0.x
 * stand for separate machines (Linux routes all of 127/8 to loopback).
 */
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import WebSocket from 'ws';
import { enroll } from '../../src/agent/enroll.ts';
import { ApiClient } from '../../src/cli/client.ts';
import { httpsRequest } from '../../src/common/https.ts';
import { startController, type ControllerConfig, type RunningController } from '../../src/server/index.ts';
import { AGENT_STREAM_PATH } from '../../src/model/agent-protocol.ts';
import { generateKeyPair } from '../../src/pki/index.ts';
import { tempDir } from '../helpers/tmp.ts';
import { waitUntil } from '../helpers/wait.ts';

describe('connection limits of the API port', () => {
  const dir = tempDir();
  const controllers: RunningController[] = [];
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    for (const c of controllers) await c.close();
    dir.remove();
  });

  const start = async (name: string, connections: ControllerConfig['connections']) => {
    const c = await startController({ dataDir: join(dir.path, name), host: '127.0.0.1', port: 0, log: pino({ level: 'silent' }), connections });
    controllers.push(c);
    return c;
  };
  const port = (c: RunningController) => Number(new URL(c.url).port);
  type Idle = { sock: Socket; closed: () => boolean };
  /** A TCP connection that says nothing, from a chosen source address; resolves once connected. */
  const idle = (c: RunningController, from = '127.0.0.1') =>
    new Promise<Idle>((resolve, reject) => {
      let closed = false;
      const sock = tcpConnect({ host: '127.0.0.1', port: port(c), localAddress: from });
      sockets.push(sock);
      sock.on('close', () => (closed = true));
      sock.on('error', () => undefined);
      sock.once('connect', () => resolve({ sock, closed: () => closed }));
      sock.once('error', reject);
    });
  const metric = async (c: RunningController, reason: string) => {
    const text = await (await new ApiClient(c.url, { ca: c.trust.ca.certPem, token: c.adminToken }).raw('GET', '/metrics')).text();
    return Number(new RegExp(`outrig_connections_closed_total\\{reason="${reason}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };

  test('one address holds at most its share, everyone together at most the total; a freed slot is usable again', async () => {
    const c = await start('limits', { maxConnections: 6, maxConnectionsPerAddress: 4 });
    const mine: Idle[] = [];
    for (let i = 0; i < 6; i++) mine.push(await idle(c));
    await waitUntil('the connections past the share to be closed', () => mine[4]!.closed() && mine[5]!.closed(), 10_000, 20);
    assert.deepEqual(
      mine.slice(0, 4).map((m) => m.closed()),
      [false, false, false, false],
      'the first four are kept',
    );
    const others = [await idle(c, '127.0.0.2'), await idle(c, '127.0.0.2'), await idle(c, '127.0.0.3')];
    await waitUntil('the connection past the total to be closed', () => others[2]!.closed(), 10_000, 20);
    assert.deepEqual(
      others.slice(0, 2).map((m) => m.closed()),
      [false, false],
    );
    // Slots free again: real requests get through, and the refusals were counted.
    for (const m of [...mine, ...others]) m.sock.destroy();
    await waitUntil(
      'the slots to be free',
      async () => (await httpsRequest(`${c.url}/healthz`, { tls: { ca: c.trust.ca.certPem } })).status === 200,
      10_000,
      50,
    );
    // At least: a request made before the server saw the closes may have been refused too.
    assert.ok((await metric(c, 'limit-address')) >= 2);
    assert.ok((await metric(c, 'limit-total')) >= 1);
  });

  test('a connection that never finishes its TLS handshake, never sends a request, or stops sending them is closed', async () => {
    const c = await start('timeouts', { handshakeTimeoutMs: 300, idleTimeoutMs: 300 });
    const raw = await idle(c);
    let tlsClosed = false;
    const tls = tlsConnect({ host: '127.0.0.1', port: port(c), ca: c.trust.ca.certPem, servername: 'localhost' });
    tls.on('close', () => (tlsClosed = true));
    tls.on('error', () => undefined);
    await new Promise((r) => tls.once('secureConnect', r));
    // One request, then nothing on the same kept-alive connection.
    let keptClosed = false;
    const kept = tlsConnect({ host: '127.0.0.1', port: port(c), ca: c.trust.ca.certPem, servername: 'localhost' });
    kept.on('close', () => (keptClosed = true));
    kept.on('error', () => undefined);
    await new Promise((r) => kept.once('secureConnect', r));
    let answer = '';
    kept.on('data', (d: Buffer) => (answer += d.toString()));
    kept.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
    await waitUntil('the answer', () => answer.includes('"status":"ok"'), 10_000, 20);
    await waitUntil('all three to be closed', () => raw.closed() && tlsClosed && keptClosed, 15_000, 20);
    assert.equal(await metric(c, 'handshake-timeout'), 1);
    assert.equal(await metric(c, 'idle-timeout'), 1, 'the kept-alive one is closed by the keep-alive timeout, not counted here');
  });

  test('an agent stream opened with a valid host certificate but no hello is closed', async () => {
    const c = await start('hello', { helloTimeoutMs: 300 });
    const { token } = await c.trust.addRule('hello', { kind: 'token' });
    const keys = generateKeyPair();
    const creds = await enroll({
      identity: { hostId: 'silent-host', name: 'silent-host', keys },
      mode: { kind: 'direct', controllerUrl: c.url, caPem: c.trust.ca.certPem },
      bootstrapToken: token,
      log: pino({ level: 'silent' }),
    });
    const ws = new WebSocket(c.url.replace('https', 'wss') + AGENT_STREAM_PATH, { ca: c.trust.ca.certPem, cert: creds.certPem, key: keys.privateKey });
    let closed: { code: number; reason: string } | undefined;
    ws.on('close', (code, reason) => (closed = { code, reason: reason.toString() }));
    ws.on('error', () => undefined);
    await new Promise((r) => ws.once('open', r));
    assert.deepEqual(await waitUntil('the stream to be closed', () => closed, 15_000, 20), { code: 1008, reason: 'no hello within 300 ms' });
    assert.equal(await metric(c, 'hello-timeout'), 1);
  });
});
