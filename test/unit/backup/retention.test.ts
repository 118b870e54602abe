import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseGroupBy, planRetention, selectKeep, sourceOf } from '../../../src/backup/prune.ts';

const at = (iso: string, id = iso) => ({ id, time: new Date(iso).toISOString() });

test('retention: last, daily, weekly and monthly, newest of each bucket, with the reasons', () => {
  const snaps = [
    at('2026-01-01T10:00Z'),
    at('2026-01-15T10:00Z'),
    at('2026-02-02T10:00Z'),
    at('2026-02-03T09:00Z'),
    at('2026-02-03T18:00Z'),
    at('2026-02-04T08:00Z'),
  ];
  const keep = selectKeep(snaps, { last: 1, daily: 2, weekly: 2, monthly: 3 });
  assert.deepEqual(
    [...keep.keys()].sort(),
    ['2026-01-15T10:00Z', '2026-02-03T18:00Z', '2026-02-04T08:00Z']
      .map((d) => new Date(d).toISOString())
      .sort()
      .map((x) => snaps.find((s) => s.time === x)!.id),
  );
  assert.deepEqual(keep.get('2026-02-04T08:00Z'), ['last', 'daily 2026-02-04', 'weekly 2026-W06', 'monthly 2026-02']);
  assert.deepEqual(keep.get('2026-02-03T18:00Z'), ['daily 2026-02-03']);
  assert.deepEqual(keep.get('2026-01-15T10:00Z'), ['weekly 2026-W03', 'monthly 2026-01']);
  assert.equal(keep.has('2026-02-03T09:00Z'), false, 'an older one of the same day is not kept');
  assert.throws(() => selectKeep(snaps, {}), /at least one retention rule/);
  assert.throws(() => selectKeep(snaps, { last: -1 }), /whole number/);
  assert.equal(selectKeep(snaps, { last: 0 }).size, 0);
});

describe('retention per group (restic-style --group-by)', () => {
  const snap = (id: string, time: string, o: { host?: string; paths?: string[]; source?: string; tags?: string[]; disk?: boolean } = {}) => ({
    id,
    time: new Date(time).toISOString(),
    hostname: o.host ?? 'h1',
    paths: o.paths ?? ['/p1'],
    source: o.source,
    tags: o.tags ?? [],
    manifest: o.disk ? { kind: 'disk-image' } : undefined,
  });
  // README's order: /etc,/home, then a disk, the same day.
  const files = snap('files', '2026-03-01T10:00Z', { paths: ['/etc', '/home'] });
  const disk = snap('disk', '2026-03-01T10:05Z', { source: 'disk /srv/vm.raw', disk: true });

  test('the default groups by host and source: a disk backup never counts against a files backup', () => {
    const groups = planRetention([files, disk], { daily: 7 });
    assert.deepEqual(
      groups.map((g) => [g.host, g.source, g.keep.map((k) => k.id), g.remove.map((r) => r.id)]),
      [
        ['h1', '/etc,/home', ['files'], []],
        ['h1', 'disk /srv/vm.raw', ['disk'], []],
      ],
    );
    assert.deepEqual(groups[0]!.keep[0]!.reasons, ['daily 2026-03-01']);
  });

  test('within a group the rules apply as before; other hosts and disks are groups of their own', () => {
    const snaps = [
      snap('a1', '2026-03-01T01:00Z', { paths: ['/etc'] }),
      snap('a2', '2026-03-01T02:00Z', { paths: ['/etc'] }),
      snap('b1', '2026-03-01T03:00Z', { paths: ['/etc'], host: 'h2' }),
      snap('d1', '2026-03-01T04:00Z', { source: 'disk /a.raw', disk: true }),
      snap('d2', '2026-03-01T05:00Z', { source: 'disk /b.raw', disk: true }),
      snap('v1', '2026-03-01T06:00Z', { source: 'volume web-root', host: 'web-root', disk: true }),
    ];
    const groups = planRetention(snaps, { last: 1 });
    assert.equal(groups.length, 5);
    assert.deepEqual(
      groups.flatMap((g) => g.remove.map((r) => r.id)),
      ['a1'],
    );
    assert.deepEqual(
      planRetention(snaps, { last: 1 }, ['host'])
        .flatMap((g) => g.keep.map((k) => k.id))
        .sort(),
      ['b1', 'd2', 'v1'].sort(),
    );
    assert.deepEqual(
      planRetention(snaps, { last: 1 }, []).flatMap((g) => g.keep.map((k) => k.id)),
      ['v1'],
      "'' is one group of everything",
    );
    const byTags = planRetention([snap('t1', '2026-03-01T01:00Z', { tags: ['x'] }), snap('t2', '2026-03-01T02:00Z', { tags: ['y'] })], { last: 1 }, ['tags']);
    assert.deepEqual(
      byTags.map((g) => [g.tags, g.keep.map((k) => k.id)]),
      [
        [['x'], ['t1']],
        [['y'], ['t2']],
      ],
    );
  });

  test('disk snapshots from before the source was recorded do not join a files group of the same paths', () => {
    const old = snap('old-disk', '2026-03-01T01:00Z', { paths: ['/p1'], disk: true });
    const f = snap('files-p1', '2026-03-01T02:00Z', { paths: ['/p1'] });
    assert.equal(sourceOf(old), 'disk /p1');
    assert.equal(planRetention([old, f], { last: 1 }).length, 2);
  });

  test('--group-by is parsed strictly; the rules are checked even with no snapshots', () => {
    assert.deepEqual(parseGroupBy('host,paths'), ['host', 'paths']);
    assert.deepEqual(parseGroupBy('source'), ['paths']);
    assert.deepEqual(parseGroupBy(''), []);
    assert.throws(() => parseGroupBy('host,disk'), /--group-by takes host, paths \(or source\) and tags.*not 'disk'/);
    assert.throws(() => planRetention([], {}), /at least one retention rule/);
  });
});
