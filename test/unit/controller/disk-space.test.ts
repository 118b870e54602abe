import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from '../../helpers/fast-check.ts';
import { chooseVolumeHost, diskRoom, fitsDisk, promisedBytes, type DiskRoom, type VolumeHostCandidate } from '../../../src/controller/placement/disk-space.ts';
import { boundVolumes, newVolumeNeed } from '../../../src/controller/placement/capacity.ts';
import { newVolumeMayAllocate } from '../../../src/disk/index.ts';
import type { Instance } from '../../../src/model/instance.ts';
import type { Volume } from '../../../src/model/volume.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
/** A new volume of S may allocate S and a journal of S/256 (4 to 64 MiB). */
const plusJournal = (s: number) => s + Math.min(64 * MiB, Math.max(4 * MiB, s / 256));
const figures = (over: Partial<{ totalBytes: number; freeBytes: number; provisionedBytes: number; mayAllocateBytes: number }> = {}) => ({
  totalBytes: 100 * GiB,
  freeBytes: 60 * GiB,
  provisionedBytes: 50 * GiB,
  mayAllocateBytes: 20 * GiB,
  ...over,
});
const room = (over: Partial<DiskRoom> = {}): DiskRoom => ({
  totalBytes: 100 * GiB,
  freeBytes: 60 * GiB,
  promisedBytes: 20 * GiB,
  canPromiseBytes: 40 * GiB,
  everBytes: 100 * GiB,
  ...over,
});
const need = (bytes: number) => ({ bytes, what: `${bytes} bytes` });

test('a new volume may allocate its size and its journal', () => {
  assert.equal(newVolumeMayAllocate(1 * GiB), plusJournal(1 * GiB));
  assert.equal(newVolumeMayAllocate(64 * MiB), 68 * MiB);
  assert.equal(newVolumeMayAllocate(64 * GiB), 64 * GiB + 64 * MiB);
  assert.equal(newVolumeNeed(1 * GiB).bytes, plusJournal(1 * GiB));
  assert.match(newVolumeNeed(1 * GiB).what, /a volume of 1 GiB \(it may allocate 1 GiB with its journal\)/);
});

test('promised: the report, plus volumes it does not have yet at their full size, plus growth not carried out yet', () => {
  const s = figures();
  assert.equal(promisedBytes(s, [], newVolumeMayAllocate), 20 * GiB);
  assert.equal(promisedBytes(s, [{ sizeBytes: 10 * GiB, reportedSizeBytes: 10 * GiB }], newVolumeMayAllocate), 20 * GiB, 'reported: in the figures already');
  assert.equal(promisedBytes(s, [{ sizeBytes: 1 * GiB }], newVolumeMayAllocate), 20 * GiB + plusJournal(1 * GiB), 'placed, not made yet');
  assert.equal(promisedBytes(s, [{ sizeBytes: 12 * GiB, reportedSizeBytes: 10 * GiB }], newVolumeMayAllocate), 22 * GiB, 'growing');
});

test('room: free × overcommit minus what is promised, never below zero', () => {
  const s = figures();
  assert.deepEqual(diskRoom(s, [], 1, newVolumeMayAllocate), {
    totalBytes: 100 * GiB,
    freeBytes: 60 * GiB,
    promisedBytes: 20 * GiB,
    canPromiseBytes: 40 * GiB,
    everBytes: 100 * GiB,
  });
  assert.equal(diskRoom(s, [], 2, newVolumeMayAllocate).canPromiseBytes, 100 * GiB);
  assert.equal(diskRoom(s, [], 2, newVolumeMayAllocate).everBytes, 200 * GiB);
  assert.equal(diskRoom(figures({ mayAllocateBytes: 70 * GiB }), [], 1, newVolumeMayAllocate).canPromiseBytes, 0);
});

test('fits: within what the host can promise; never when even its empty disk could not; a host without a report fits', () => {
  assert.deepEqual(fitsDisk('h1', room(), need(40 * GiB), 1), { ok: true });
  const now = fitsDisk('h1', room(), need(40 * GiB + 1), 1);
  assert.equal(now.ok, false);
  if (!now.ok) {
    assert.equal(now.never, false);
    assert.equal(now.message, `host h1 cannot hold ${40 * GiB + 1} bytes: it can promise 40 GiB more (60 GiB free, 20 GiB promised to its volumes)`);
  }
  const never = fitsDisk('h1', room(), need(100 * GiB + 1), 1);
  assert.equal(never.ok, false);
  if (!never.ok) {
    assert.equal(never.never, true);
    assert.match(never.message, /^host h1 can never hold .*: it has a disk of 100 GiB$/);
  }
  assert.deepEqual(fitsDisk('h1', undefined, need(1000 * GiB), 1), { ok: true });
});

test('with an overcommit above 1, promising beyond the free space is allowed and says so', () => {
  const r = room({ canPromiseBytes: 100 * GiB, everBytes: 200 * GiB });
  const f = fitsDisk('h1', r, need(50 * GiB), 2);
  assert.equal(f.ok, true);
  assert.match((f as { overcommitted?: string }).overcommitted ?? '', /host h1 promises its volumes 70 GiB with 60 GiB free \(disk overcommit 2\)/);
  assert.deepEqual(fitsDisk('h1', r, need(40 * GiB), 2), { ok: true }, 'within the free space: no warning');
});

test('a fitting host never promises more than free × overcommit', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 40 }),
      fc.nat({ max: 2 ** 40 }),
      fc.constantFrom(0.5, 1, 1.5, 3),
      (total, free, may, bytes, oc) => {
        const r = diskRoom({ totalBytes: total, freeBytes: free, provisionedBytes: 0, mayAllocateBytes: may }, [], oc, newVolumeMayAllocate);
        const f = fitsDisk('h', r, need(bytes + 1), oc);
        assert.equal(f.ok, bytes + 1 + may <= Math.floor(free * oc));
      },
    ),
  );
});

const cand = (name: string, r?: DiskRoom, freeMemoryMiB = 1024): VolumeHostCandidate => ({ id: `h-${name}`, name, room: r, freeMemoryMiB });

test('volume placement: the host with the most room left to promise; hosts without a report after every host with one', () => {
  const c = chooseVolumeHost(
    [cand('a', room({ canPromiseBytes: 10 * GiB })), cand('b', room({ canPromiseBytes: 30 * GiB })), cand('c', undefined, 99999)],
    need(GiB),
    1,
  );
  assert.deepEqual(c, { ok: true, hostId: 'h-b', hostName: 'b', overcommitted: undefined });
  const small = chooseVolumeHost([cand('a', room({ canPromiseBytes: 1 * GiB })), cand('c', undefined, 10), cand('d', undefined, 20)], need(5 * GiB), 1);
  assert.equal(small.ok && small.hostName, 'd', 'unknown hosts by free memory when no reporting host fits');
  const tie = chooseVolumeHost([cand('b', room()), cand('a', room())], need(GiB), 1);
  assert.equal(tie.ok && tie.hostName, 'a', 'ties go to the name');
});

test('volume placement that fails says why per host, and whether any host ever could', () => {
  const now = chooseVolumeHost(
    [cand('a', room({ canPromiseBytes: 1 * GiB })), cand('b', room({ canPromiseBytes: 2 * GiB }))],
    { bytes: 5 * GiB, what: 'a volume of 5 GiB' },
    1,
  );
  assert.equal(now.ok, false);
  if (!now.ok) {
    assert.equal(now.never, false);
    assert.match(
      now.message,
      /^0\/2 hosts can hold a volume of 5 GiB: a can promise 1 GiB more \(60 GiB free, 20 GiB promised to its volumes\); b can promise 2 GiB more/,
    );
  }
  const never = chooseVolumeHost([cand('a', room({ canPromiseBytes: 1 * GiB, everBytes: 4 * GiB, freeBytes: 2 * GiB }))], need(5 * GiB), 1);
  assert.equal(!never.ok && never.never, true);
  assert.equal(
    !never.ok && never.message,
    `no host can ever hold ${5 * GiB} bytes: a has a disk of 100 GiB; that is 2.5 times the most free space of a host (2 GiB on a), past the disk overcommit of 1 (controller --disk-overcommit)`,
  );
  const many = chooseVolumeHost(
    Array.from({ length: 8 }, (_, i) => cand(`h${i}`, room({ canPromiseBytes: 0 }))),
    need(GiB),
    1,
  );
  assert.match(!many.ok ? many.message : '', /; and 3 more$/);
});

test('a volume far beyond every host is refused saying how far beyond the largest free space it goes', () => {
  // The README's mistake: 100 TiB on hosts with tens of GiB free.
  const small = (free: number) => room({ totalBytes: 250 * GiB, freeBytes: free, promisedBytes: 0, canPromiseBytes: free, everBytes: 250 * GiB });
  const c = chooseVolumeHost([cand('h1', small(75 * GiB)), cand('h2', small(20 * GiB))], { bytes: 100 * 1024 * GiB, what: 'a volume of 100 TiB' }, 1);
  assert.equal(c.ok, false);
  if (!c.ok) {
    assert.equal(c.never, true);
    assert.match(
      c.message,
      /; that is 1365 times the most free space of a host \(75 GiB on h1\), past the disk overcommit of 1 \(controller --disk-overcommit\)$/,
    );
  }
});

test('bound volumes: placed on the host, or not placed yet with their instance there; not failed ones, not deleted ones', () => {
  const vol = (
    id: string,
    over: { hostId?: string; phase?: Volume['status']['phase']; ownedBy?: string; attachedTo?: string; sizeBytes?: number; reported?: number },
  ): Volume =>
    ({
      id,
      spec: { sizeBytes: over.sizeBytes ?? GiB, tenant: 'default', ownedBy: over.ownedBy, attachedTo: over.attachedTo },
      status: { phase: over.phase ?? 'available', conditions: [], hostId: over.hostId, sizeBytes: over.reported, observedGeneration: 0 },
    }) as unknown as Volume;
  const inst = (id: string, hostId?: string) => ({ id, status: { hostId } }) as unknown as Instance;
  const volumes = [
    vol('v-on', { hostId: 'h1', reported: GiB }),
    vol('v-new', { hostId: 'h1', phase: 'creating' }),
    vol('v-other', { hostId: 'h2' }),
    vol('v-follows', { ownedBy: 'i-1', phase: 'pending', sizeBytes: 2 * GiB }),
    vol('v-waits', { ownedBy: 'i-2', phase: 'pending' }),
    vol('v-failed', { hostId: 'h1', phase: 'failed' }),
    vol('v-gone', { hostId: 'h1', phase: 'deleting' }),
  ];
  const instances = [inst('i-1', 'h1'), inst('i-2')];
  const live = { storage: () => undefined, volume: (_h: string, id: string) => (id === 'v-on' ? { sizeBytes: GiB } : undefined) };
  assert.deepEqual(boundVolumes('h1', volumes, instances, live), [
    { sizeBytes: GiB, reportedSizeBytes: GiB },
    { sizeBytes: GiB, reportedSizeBytes: undefined },
    { sizeBytes: 2 * GiB, reportedSizeBytes: undefined },
  ]);
  assert.equal(boundVolumes('h1', volumes, instances, live, 'v-follows').length, 2, 'the volume being placed is not counted');
  // Without a live report: sizes from the volumes' statuses.
  assert.deepEqual(boundVolumes('h1', volumes, instances, undefined)[0], { sizeBytes: GiB, reportedSizeBytes: GiB });
});
