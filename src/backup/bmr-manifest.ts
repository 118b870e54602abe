/**
 * A disk backup's manifest checked before a restore uses it. The repository is written by the
 * cluster's hosts and the manifest came from a guest's disk: its fields become an sfdisk script,
 * mkfs arguments, write offsets and paths, so each must have the shape its use allows.
 */
import { Type } from 'typebox';
import { Value } from 'typebox/value';
import type { BmrManifest } from './bmr.ts';
import { Count, NoTableSchema, PartitionSchema, TableSchema, Uuid, WHOLE_DISK } from '../guest-disk/index.ts';

/** Largest disk a manifest may describe (64 TiB). */
const MAX_DISK = 2 ** 46;
const BlobId = Type.String({ pattern: '^[0-9a-f]{64}$' });
/** An absolute path inside a filesystem: no "." or ".." component, nothing unprintable. */
const FsPath = Type.String({ pattern: '^(/[^/\\u0000-\\u001f\\u007f]+)+$', maxLength: 4096 });
/** A partition's number; 0 is the whole disk of a disk with no partition table. */
const Index = Type.Integer({ minimum: 0, maximum: 1024 });

const Manifest = Type.Object({
  kind: Type.Literal('disk-image'),
  layout: Type.Object({
    sizeBytes: Type.Integer({ minimum: 512, maximum: MAX_DISK }),
    table: Type.Union([TableSchema, NoTableSchema]),
    partitions: Type.Array(PartitionSchema, { maxItems: 1024 }),
    filesystems: Type.Array(
      Type.Object({
        partition: Index,
        type: Type.String({ pattern: '^[A-Za-z0-9_]{1,16}$' }),
        uuid: Type.Optional(Uuid),
        label: Type.Optional(Type.String({ pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]{1,16}$' })),
        blockSize: Type.Optional(Type.Union([1024, 2048, 4096, 8192, 16384, 32768, 65536].map((n) => Type.Literal(n)))),
        features: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9_-]{1,32}$' }), { maxItems: 64 })),
        inodeSize: Type.Optional(Type.Integer({ minimum: 128, maximum: 65536 })),
        inodesCount: Type.Optional(Count),
      }),
      { maxItems: 1024 },
    ),
  }),
  bootAreas: Type.Array(Type.Object({ offset: Count, length: Count, what: Type.String({ maxLength: 200 }), content: Type.Array(BlobId) }), { maxItems: 1024 }),
  filesystems: Type.Array(Type.Object({ partition: Index, path: Type.String({ pattern: '^/p[0-9]{1,4}$' }) }), { maxItems: 1024 }),
  rawPartitions: Type.Array(Type.Object({ partition: Index, content: Type.Array(BlobId) }), { maxItems: 1024 }),
  rawAreas: Type.Optional(Type.Array(Type.Object({ offset: Count, length: Count, content: Type.Array(BlobId) }))),
  bmrReady: Type.Boolean(),
  bootLoader: Type.Optional(
    Type.Object({
      kind: Type.Union([Type.Literal('grub'), Type.Literal('extlinux'), Type.Literal('unknown')]),
      partition: Type.Optional(Index),
      config: Type.Optional(FsPath),
    }),
  ),
  mounts: Type.Optional(
    Type.Array(Type.Object({ partition: Index, mountPoint: Type.String({ maxLength: 4096 }), options: Type.Optional(Type.String({ maxLength: 4096 })) }), {
      maxItems: 1024,
    }),
  ),
  ssr: Type.Array(Type.String({ pattern: '^/p[0-9]{1,4}(/[^/\\u0000-\\u001f\\u007f]+)*$', maxLength: 4096 }), { maxItems: 1024 }),
});

export function checkManifest(manifest: unknown): BmrManifest {
  if ((manifest as { kind?: unknown } | undefined)?.kind !== 'disk-image') throw new Error('this snapshot is not of a disk (make it from a disk or volume)');
  const bad = (why: string) => new Error(`this snapshot's disk manifest is damaged or forged (${why}): it is not used`);
  if (!Value.Check(Manifest, manifest)) {
    const first = Value.Errors(Manifest, manifest)[0];
    throw bad(first ? `${first.instancePath || '/'} ${first.message}` : 'its shape');
  }
  const m = manifest as BmrManifest;
  const ss = m.layout.table.sectorSize;
  for (const p of m.layout.partitions) if ((p.start + p.size) * ss > m.layout.sizeBytes) throw bad(`partition ${p.index} lies outside the disk`);
  for (const a of m.bootAreas) if (a.offset + a.length > m.layout.sizeBytes) throw bad('a boot area lies outside the disk');
  const whole = m.layout.table.label === 'none';
  if (whole && m.layout.partitions.length) throw bad('partitions on a disk with no partition table');
  const parts = new Set(whole ? [WHOLE_DISK] : m.layout.partitions.map((p) => p.index));
  let end = 0;
  for (const a of m.rawAreas ?? []) {
    if (a.offset < end || a.offset + a.length > m.layout.sizeBytes) throw bad('a raw area overlaps another or lies outside the disk');
    end = a.offset + a.length;
  }
  for (const f of m.filesystems) {
    const id = m.layout.filesystems.find((x) => x.partition === f.partition);
    if (!parts.has(f.partition) || f.path !== `/p${f.partition}` || !id || !/^ext[234]$/.test(id.type)) throw bad(`filesystem ${f.path}`);
  }
  for (const r of m.rawPartitions) if (!parts.has(r.partition)) throw bad(`raw partition ${r.partition}`);
  if (m.bootLoader?.partition !== undefined && !parts.has(m.bootLoader.partition)) throw bad('the boot loader partition');
  if ([m.bootLoader?.config ?? '', ...m.ssr].some((p) => p.split('/').some((c) => c === '.' || c === '..'))) throw bad('a path with "." or ".."');
  return m;
}
