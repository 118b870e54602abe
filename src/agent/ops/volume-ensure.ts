/** A volume: empty, cloned from an image or a snapshot, or rebuilt from a backup (idempotent by volume id). */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VolumeSource } from '../../disk/index.ts';
import type { BackupRepoRef, DiskImageRef } from '../../model/agent-protocol.ts';
import type { OpContext, OpHandler, OpOf } from './types.ts';

export const volumeEnsure: OpHandler<'volume.ensure'> = {
  kind: 'volume.ensure',
  journaled: true,
  refreshesVolumes: true,
  run: async (op, ctx) => {
    if (op.source && 'backup' in op.source) return restoreVolume(op, op.source.backup, ctx);
    let source: VolumeSource | undefined;
    if (op.source && 'image' in op.source) {
      await ensureDiskImage(op.source.image, ctx);
      source = { image: op.source.image.id };
    } else if (op.source) source = { volume: op.source.volumeId, snapshot: op.source.snapshotId };
    await ctx.storage.createVolume(op.volumeId, { sizeBytes: op.sizeBytes, blockSize: op.blockSize, source });
  },
};

/** A disk image, fetched once per host and handed to diskd, which clones volumes from it. */
async function ensureDiskImage(image: DiskImageRef, { storage, images }: OpContext): Promise<void> {
  if (await storage.hasImage(image.id)) return;
  const staging = join(storage.paths.dir, `incoming-${image.id}.odsk`);
  await images.download(image, 'disk', image.file, staging);
  await storage.registerImage(image.id, staging);
}

/**
 * A new volume rebuilt from a backup. A marker file says the volume is not whole yet: a restore
 * cut short by an agent crash is started again from scratch, and on failure the volume is deleted,
 * so nothing half-made stays or is ever reported.
 */
async function restoreVolume(op: OpOf<'volume.ensure'>, from: { repository: BackupRepoRef; snapshotId: string }, ctx: OpContext): Promise<void> {
  const { storage, backups, filling, log } = ctx;
  const marker = backups.restoreMarker(op.volumeId);
  const exists = (await storage.volumes()).some((v) => v.name === op.volumeId);
  if (exists && !existsSync(marker)) return;
  filling.add(op.volumeId);
  try {
    writeFileSync(marker, '');
    if (exists) await storage.deleteVolume(op.volumeId);
    await storage.createVolume(op.volumeId, { sizeBytes: op.sizeBytes, blockSize: op.blockSize });
    await backups.restoreInto(op.volumeId, from.repository, from.snapshotId, ctx.progress(op.opId)).catch(async (e: Error) => {
      await storage
        .deleteVolume(op.volumeId)
        .catch((d: Error) => log.warn({ volume: op.volumeId, err: d.message }, 'could not remove the half-restored volume'));
      throw e;
    });
  } finally {
    rmSync(marker, { force: true });
    filling.delete(op.volumeId);
  }
}
