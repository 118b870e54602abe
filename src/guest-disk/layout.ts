/**
 * A disk's partition table and filesystem identities, read by the sandboxed reader and checked
 * here before anything uses them: the table's fields go into an sfdisk script on restore and the
 * identities into mkfs arguments, so each must have the shape its kind allows.
 */
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { runReader } from './run-reader.ts';
import { printable } from '../sandbox/index.ts';
import { hasControl } from './names.ts';

export const Guid = Type.String({ pattern: '^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$' });
export const Uuid = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });
export const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

/** A partition table's fields, as they go into an sfdisk script: shared with the check of a backup's manifest. */
export const TableSchema = Type.Object({
  label: Type.Union([Type.Literal('dos'), Type.Literal('gpt')]),
  id: Type.Union([Guid, Type.String({ pattern: '^0x[0-9a-f]{8}$' })]),
  sectorSize: Type.Literal(512),
  firstLba: Type.Optional(Count),
  lastLba: Type.Optional(Count),
});

/**
 * A disk with no partition table: blank, or a filesystem made on the whole device, which then
 * stands as partition 0 (WHOLE_DISK) wherever a partition's number is asked for.
 */
export const NoTableSchema = Type.Object({ label: Type.Literal('none'), sectorSize: Type.Literal(512) });
export const WHOLE_DISK = 0;

export const PartitionSchema = Type.Object({
  index: Type.Integer({ minimum: 1, maximum: 1024 }),
  start: Count,
  size: Count,
  type: Type.Union([Guid, Type.String({ pattern: '^[0-9a-f]{1,2}$' })]),
  uuid: Type.Optional(Guid),
  name: Type.Optional(Type.String({ maxLength: 36 })),
  bootable: Type.Optional(Type.Boolean()),
  attrs: Type.Optional(Type.String({ pattern: '^[A-Za-z]+( [A-Za-z]+)*( ?GUID:[0-9]{2}(,[0-9]{2})*)?$' })),
});

const ReaderLayout = Type.Object({
  table: Type.Union([TableSchema, NoTableSchema]),
  partitions: Type.Array(PartitionSchema, { maxItems: 1024 }),
  filesystems: Type.Array(
    Type.Object({
      partition: Type.Integer({ minimum: 0, maximum: 1024 }),
      type: Type.String({ pattern: '^[A-Za-z0-9_]{1,16}$' }),
      uuid: Type.Optional(Uuid),
      label: Type.Optional(Type.String({ maxLength: 24 })),
      blockSize: Type.Optional(Type.Union([1024, 2048, 4096, 8192, 16384, 32768, 65536].map((n) => Type.Literal(n)))),
      inodeSize: Type.Optional(Type.Integer({ minimum: 128, maximum: 65536 })),
      inodesCount: Type.Optional(Count),
      features: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9_-]{1,32}$' }), { maxItems: 64 })),
      error: Type.Optional(Type.String({ maxLength: 1000 })),
    }),
    { maxItems: 1024 },
  ),
  /** Why a table that seemed to be there was not used (the whole disk is then kept block by block). */
  tableProblem: Type.Optional(Type.String({ maxLength: 1000 })),
});
export type ReaderLayout = Static<typeof ReaderLayout>;

/**
 * Reads and checks a disk's layout; `sizeBytes` is the disk's size (a block device's stat says 0).
 * Errors call the disk `name`: what the user gave (a volume read into a scratch file is the volume).
 */
export async function readLayout(disk: string, sizeBytes: number, name = disk): Promise<{ layout: ReaderLayout; warnings: string[] }> {
  const out = await runReader(disk, {
    args: ['layout', sizeBytes],
    timeoutMs: 60_000,
    maxOutputBytes: 4 * 1024 * 1024,
    what: 'the disk reader (partition table)',
  }).catch((e: Error) => {
    throw new Error(`cannot read the layout of ${name}: ${e.message.replace(/^the disk reader \(partition table\) failed \(exit 2\): /, '')}`, { cause: e });
  });
  let raw: unknown;
  try {
    raw = JSON.parse(out.toString('utf8'));
  } catch {
    throw new Error(`the disk reader's answer about ${name} is not JSON`);
  }
  if (!Value.Check(ReaderLayout, raw)) throw new Error(`the disk reader's answer about ${name} does not have the expected shape`);
  const layout = raw;
  const warnings: string[] = [];
  if (layout.table.label === 'none' && layout.partitions.length) throw new Error(`the disk reader named partitions of a disk with no partition table`);
  if (layout.tableProblem !== undefined)
    warnings.push(`the partition table cannot be read (${printable(layout.tableProblem)}): the whole disk is kept block by block`);
  const sectors = Math.floor(sizeBytes / layout.table.sectorSize);
  for (const p of layout.partitions) {
    if (p.start + p.size > sectors) throw new Error(`partition ${p.index} lies outside the disk`);
    if (p.name !== undefined && hasControl(p.name)) {
      warnings.push(`partition ${p.index}'s name ${JSON.stringify(p.name)} holds a control character: not kept`);
      delete p.name;
    }
  }
  for (const f of layout.filesystems) {
    const whole = f.partition === WHOLE_DISK && layout.table.label === 'none';
    if (!whole && !layout.partitions.some((p) => p.index === f.partition))
      throw new Error(`the disk reader named a filesystem on partition ${f.partition}, which does not exist`);
    if (f.label !== undefined) {
      const bytes = Buffer.from(f.label, 'base64');
      const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
      if (bytes.length > 16 || hasControl(text) || Buffer.from(text).compare(bytes) !== 0) {
        warnings.push(
          `${f.partition === WHOLE_DISK ? "the disk's" : `partition ${f.partition}'s`} filesystem label ${printable(JSON.stringify(text))} is not printable UTF-8: not kept`,
        );
        delete f.label;
      } else if (text) f.label = text;
      else delete f.label;
    }
  }
  return { layout, warnings };
}
