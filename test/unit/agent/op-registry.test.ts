/**
 * The operation registry and dispatcher: every kind of the protocol has its handler, each handler
 * gets its own operation and calls the service it is about with it, and the journal and the volume
 * refresh apply to exactly the kinds they should.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { AgentOp } from '../../../src/model/agent-protocol.ts';
import { OpDispatcher } from '../../../src/agent/ops/dispatch.ts';
import { Cancellations, handlers, type OpContext, type OpKind, type OpOf } from '../../../src/agent/ops/index.ts';
import { OpJournal } from '../../../src/agent/op-journal.ts';
import { tempDir } from '../../helpers/tmp.ts';

const repo = { url: 'file:///backups', password: 'pw' } as unknown as OpOf<'backup.forget'>['repository'];
const vm = { name: 'web', vcpus: 1, memoryMiB: 256, generation: 3 } as unknown as OpOf<'vm.start'>['vm'];

/** One operation of every kind (the type makes a missing kind a compile error here too). */
const samples: { [K in OpKind]: OpOf<K> } = {
  'vm.start': { opId: 'o1', kind: 'vm.start', instanceId: 'i-1', vm },
  'vm.restart': { opId: 'o2', kind: 'vm.restart', instanceId: 'i-1', vm, force: true },
  'vm.stop': { opId: 'o3', kind: 'vm.stop', instanceId: 'i-1', generation: 3, force: false },
  'vm.delete': { opId: 'o4', kind: 'vm.delete', instanceId: 'i-1' },
  'vm.attach': { opId: 'o5', kind: 'vm.attach', instanceId: 'i-1', volumeId: 'v-1', tag: 't' },
  'vm.detach': { opId: 'o6', kind: 'vm.detach', instanceId: 'i-1', volumeId: 'v-1' },
  'vm.balloon': { opId: 'o7', kind: 'vm.balloon', instanceId: 'i-1', targetMiB: 200 },
  'op.cancel': { opId: 'o8', kind: 'op.cancel', target: 'o-none' },
  'volume.ensure': { opId: 'o9', kind: 'volume.ensure', volumeId: 'v-1', sizeBytes: 1 << 20, source: { volumeId: 'v-0', snapshotId: 's-0' } },
  'volume.resize': { opId: 'o10', kind: 'volume.resize', volumeId: 'v-1', sizeBytes: 2 << 20 },
  'volume.delete': { opId: 'o11', kind: 'volume.delete', volumeId: 'v-1' },
  'snapshot.ensure': { opId: 'o12', kind: 'snapshot.ensure', volumeId: 'v-1', snapshotId: 's-1' },
  'snapshot.delete': { opId: 'o13', kind: 'snapshot.delete', volumeId: 'v-1', snapshotId: 's-1' },
  'backup.create': { opId: 'o14', kind: 'backup.create', backupId: 'b-1', volumeId: 'v-1', repository: repo, tags: ['x'], source: 's-1' },
  'backup.files': { opId: 'o15', kind: 'backup.files', backupId: 'b-2', paths: ['/etc'], repository: repo, tags: [] },
  'backup.restore-files': { opId: 'o16', kind: 'backup.restore-files', repository: repo, snapshotId: 'r-1', target: '/restore', include: ['/etc'] },
  'backup.forget': { opId: 'o17', kind: 'backup.forget', repository: repo, snapshotId: 'r-1' },
  'backup.restore-system-state': { opId: 'o18', kind: 'backup.restore-system-state', volumeId: 'v-1', repository: repo, snapshotId: 'r-1' },
  'backup.restore-into-volume': { opId: 'o19', kind: 'backup.restore-into-volume', volumeId: 'v-1', repository: repo, snapshotId: 'r-1', include: ['/p1/etc'] },
  'network.ensure': { opId: 'o20', kind: 'network.ensure', networkId: 'n-1', segment: 7, peers: ['10.0.0.2'] },
  'network.remove': { opId: 'o21', kind: 'network.remove', networkId: 'n-1', segment: 7 },
  'host.principal': { opId: 'o22', kind: 'host.principal', certificate: 'PEM' },
};

/** The service call each sample should become: `service.method` and its arguments (functions stand for progress sinks and signals). */
const expected: { [K in OpKind]: [string, unknown[]] | undefined } = {
  'vm.start': ['vms.start', ['i-1', vm]],
  'vm.restart': ['vms.restart', ['i-1', vm, { force: true }]],
  'vm.stop': ['vms.stop', ['i-1', { force: false }]],
  'vm.delete': ['vms.delete', ['i-1']],
  'vm.attach': ['vms.attach', ['i-1', 'v-1', 't']],
  'vm.detach': ['vms.detach', ['i-1', 'v-1']],
  'vm.balloon': ['vms.balloon', ['i-1', 200]],
  'op.cancel': undefined,
  'volume.ensure': ['storage.createVolume', ['v-1', { sizeBytes: 1 << 20, blockSize: undefined, source: { volume: 'v-0', snapshot: 's-0' } }]],
  'volume.resize': ['storage.resize', ['v-1', 2 << 20]],
  'volume.delete': ['storage.deleteVolume', ['v-1']],
  'snapshot.ensure': ['storage.createSnapshot', ['v-1', 's-1']],
  'snapshot.delete': ['storage.deleteSnapshot', ['v-1', 's-1']],
  'backup.create': ['backups.backup', [samples['backup.create'], 'function', 'signal']],
  'backup.files': ['backups.files', [samples['backup.files'], 'function', 'signal']],
  'backup.restore-files': ['backups.restoreFiles', [repo, 'r-1', '/restore', ['/etc']]],
  'backup.forget': ['backups.forget', [repo, 'r-1']],
  'backup.restore-system-state': ['backups.restoreSystemState', ['v-1', repo, 'r-1']],
  'backup.restore-into-volume': ['backups.restoreIntoVolume', ['v-1', repo, 'r-1', ['/p1/etc']]],
  'network.ensure': ['network.ensure', [7, ['10.0.0.2'], undefined]],
  'network.remove': ['network.remove', [7]],
  'host.principal': ['supplicant.apply', ['PEM']],
};

const NOT_JOURNALED = new Set<OpKind>(['vm.balloon', 'op.cancel']);
const KEEPS_VOLUMES = new Set<OpKind>(['vm.start', 'vm.restart', 'vm.stop', 'vm.delete', 'vm.attach', 'vm.detach', 'vm.balloon', 'op.cancel']);

/** A context whose services record every call; `results` says what a call answers (default undefined), `fail` which calls throw. */
function recordingContext(o: { results?: Record<string, unknown>; fail?: Set<string>; wait?: Map<string, Promise<unknown>> } = {}) {
  const calls: [string, unknown[]][] = [];
  const service = (name: string) =>
    new Proxy(
      {},
      {
        get:
          (_t, method) =>
          async (...args: unknown[]) => {
            const key = `${name}.${String(method)}`;
            calls.push([key, args.map((a) => (typeof a === 'function' ? 'function' : a instanceof AbortSignal ? 'signal' : a))]);
            await o.wait?.get(key);
            if (o.fail?.has(key)) throw new Error(`${key} failed`);
            return o.results?.[key];
          },
      },
    );
  const ctx = {
    vms: service('vms'),
    storage: service('storage'),
    backups: service('backups'),
    network: service('network'),
    supplicant: service('supplicant'),
    images: service('images'),
    filling: new Set<string>(),
    cancellations: new Cancellations(),
    progress: () => () => undefined,
    log: pino({ level: 'silent' }),
  } as unknown as OpContext;
  return { ctx, calls };
}

/** A journal that remembers nothing: every operation runs. */
const passThrough = {
  run: (_id: string, work: () => Promise<void | Record<string, unknown>>) =>
    work().then(
      (result) => ({ ok: true, result: result || undefined }),
      (e: Error) => ({ ok: false, error: e.message }),
    ),
};

function dispatcher(ctx: OpContext, journal: Pick<OpJournal, 'run'> = passThrough) {
  let refreshes = 0;
  const d = new OpDispatcher({ journal, ctx, refreshVolumes: async () => void refreshes++, log: pino({ level: 'silent' }) });
  return { d, refreshes: () => refreshes };
}

test('every operation kind of the protocol has a handler registered under its own kind', () => {
  const kinds = AgentOp.anyOf.map((o) => o.properties.kind.const as string).sort();
  assert.deepEqual(Object.keys(handlers).sort(), kinds);
  for (const [kind, h] of Object.entries(handlers)) assert.equal(h.kind, kind);
});

test('vm.balloon and op.cancel are answered without the journal, every other kind through it', () => {
  for (const [kind, h] of Object.entries(handlers)) assert.equal(h.journaled, !NOT_JOURNALED.has(kind as OpKind), kind);
});

test('each handler receives its operation and hands it to its service; storage, backup, network and principal ops refresh the volumes', async () => {
  for (const kind of Object.keys(samples) as OpKind[]) {
    const { ctx, calls } = recordingContext({ results: { 'backups.backup': { snapshotId: 'r-2' }, 'backups.files': { snapshotId: 'r-3' } } });
    const { d, refreshes } = dispatcher(ctx);
    const answer = await d.answer(samples[kind]);
    assert.equal(answer.ok, true, `${kind}: ${answer.error}`);
    assert.equal(answer.opId, samples[kind].opId);
    const want = expected[kind];
    assert.deepEqual(calls, want ? [want] : [], kind);
    assert.equal(refreshes(), KEEPS_VOLUMES.has(kind) ? 0 : 1, kind);
  }
});

test('answers carry what the handler returns, and nothing for operations without a result', async () => {
  const { ctx } = recordingContext({ results: { 'backups.backup': { snapshotId: 'r-2', bytes: 5 }, 'storage.resize': { name: 'v-1', sizeBytes: 2 } } });
  const { d } = dispatcher(ctx);
  assert.deepEqual((await d.answer(samples['backup.create'])).result, { snapshotId: 'r-2', bytes: 5 });
  // diskd's answer to a resize is not the operation's.
  assert.equal((await d.answer(samples['volume.resize'])).result, undefined);
  assert.deepEqual(await d.answer(samples['op.cancel']), { type: 'op-result', opId: 'o8', ok: true, result: { running: false } });
});

test('a failed storage operation still refreshes the volumes, and answers the error', async () => {
  const { ctx } = recordingContext({ fail: new Set(['storage.deleteVolume']) });
  const { d, refreshes } = dispatcher(ctx);
  const a = await d.answer(samples['volume.delete']);
  assert.equal(a.ok, false);
  assert.equal(a.error, 'storage.deleteVolume failed');
  assert.equal(refreshes(), 1);
});

test('a repeated journaled operation is done once; a repeated balloon move is done again', async () => {
  const dir = tempDir();
  try {
    const journal = new OpJournal(join(dir.path, 'operations.json'));
    const { ctx, calls } = recordingContext();
    const { d } = dispatcher(ctx, journal);
    await d.answer(samples['vm.stop']);
    await d.answer(samples['vm.stop']);
    await d.answer(samples['vm.balloon']);
    await d.answer(samples['vm.balloon']);
    assert.deepEqual(
      calls.map((c) => c[0]),
      ['vms.stop', 'vms.balloon', 'vms.balloon'],
    );
  } finally {
    dir.remove();
  }
});

test('op.cancel aborts a running backup, which answers failed with the reason', async () => {
  let release!: () => void;
  const { ctx } = recordingContext({ wait: new Map([['backups.backup', new Promise<void>((r) => (release = r))]]) });
  // The recording backup ignores its signal; the real one rejects with the signal's reason.
  const backups = ctx.backups as unknown as Record<string, unknown>;
  const recorded = backups.backup as (...a: unknown[]) => Promise<unknown>;
  ctx.backups = new Proxy(backups, {
    get: (t, m) =>
      m === 'backup'
        ? (op: unknown, p: unknown, signal: AbortSignal) =>
            Promise.race([recorded(op, p, signal), new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)))])
        : t[m as string],
  }) as unknown as OpContext['backups'];
  const { d } = dispatcher(ctx);
  const running = d.answer(samples['backup.create']);
  await new Promise((r) => setImmediate(r));
  const cancel = await d.answer({ ...samples['op.cancel'], target: 'o14' });
  assert.deepEqual(cancel.result, { running: true });
  const a = await running;
  assert.equal(a.ok, false);
  assert.equal(a.error, 'cancelled on request');
  release();
  assert.deepEqual((await d.answer({ ...samples['op.cancel'], opId: 'o99', target: 'o14' })).result, { running: false });
});

test('an operation of a kind the agent does not know is answered failed, and nothing runs', async () => {
  const { ctx, calls } = recordingContext();
  const { d, refreshes } = dispatcher(ctx);
  for (const kind of ['vm.teleport', 'constructor', '__proto__']) {
    const a = await d.answer({ opId: 'x1', kind, instanceId: 'i-1' } as unknown as OpOf<'vm.delete'>);
    assert.deepEqual(a, { type: 'op-result', opId: 'x1', ok: false, error: `this agent does not know operation kind ${JSON.stringify(kind)}` });
  }
  assert.deepEqual(calls, []);
  assert.equal(refreshes(), 0);
});
