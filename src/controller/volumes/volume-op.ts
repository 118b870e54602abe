/** The agent operation a planned volume step becomes (with its source: a snapshot, a disk image or a backup). */
import type { AgentOp } from '../../model/agent-protocol.ts';
import type { Volume } from '../../model/volume.ts';
import { repoOf } from '../backups/repository.ts';
import type { Ctx } from '../context.ts';

export async function volumeOp(ctx: Ctx, v: Volume, opId: string, kind: AgentOp['kind']): Promise<AgentOp | { error: string }> {
  switch (kind) {
    case 'volume.delete':
      return { opId, kind, volumeId: v.id };
    case 'volume.resize':
      return { opId, kind, volumeId: v.id, sizeBytes: v.spec.sizeBytes };
    case 'volume.ensure': {
      const op: Extract<AgentOp, { kind: 'volume.ensure' }> = { opId, kind, volumeId: v.id, sizeBytes: v.spec.sizeBytes, blockSize: v.spec.blockSize };
      const src = v.spec.source;
      if (src && 'snapshot' in src) {
        const snap = await ctx.store.snapshots.get(src.snapshot);
        if (!snap || snap.status.phase !== 'ready') return { error: `snapshot ${src.snapshot} is not ready` };
        op.source = { volumeId: snap.spec.volume, snapshotId: snap.id };
      } else if (src && 'image' in src) {
        const img = await ctx.store.images.get(src.image);
        if (!img || img.status.phase !== 'ready' || img.spec.kind !== 'disk') return { error: `disk image ${src.image} is not available` };
        op.source = { image: { id: img.id, name: img.name, file: img.spec.files.disk } };
      } else if (src && 'backup' in src) {
        const b = await ctx.store.backups.get(src.backup);
        if (!b?.status.result || b.status.phase !== 'completed') return { error: `backup ${src.backup} is not completed` };
        op.source = { backup: { repository: repoOf(ctx.backup, b), snapshotId: b.status.result.snapshotId } };
      }
      return op;
    }
    default:
      return { error: `operation ${kind} is not a volume operation` };
  }
}
