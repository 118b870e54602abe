/**
 * Which snapshot a reference means. Snapshot names are unique per volume, not across volumes, so
 * a reference is a snapshot id, `VOLUME/SNAPSHOT`, or a bare name when only one volume has a
 * snapshot of that name. Pure: the API passes the snapshots and volumes in.
 */
import type { Snapshot } from '../../model/volume.ts';

interface VolumeRef {
  id: string;
  name: string;
}

type SnapshotPick = { ok: true; snapshot: Snapshot } | { ok: false; status: 404 | 409; code: string; message: string };

/** `volume` (a name or id) narrows the search to that volume's snapshots, as `VOLUME/` in front of the name does. */
export function pickSnapshot(ref: string, snapshots: Snapshot[], volumes: VolumeRef[], volume?: string): SnapshotPick {
  const slash = ref.indexOf('/');
  const volRef = volume ?? (slash >= 0 ? ref.slice(0, slash) : undefined);
  const snapRef = volume === undefined && slash >= 0 ? ref.slice(slash + 1) : ref;
  const nameOf = (volumeId: string) => volumes.find((v) => v.id === volumeId)?.name ?? volumeId;
  if (volRef !== undefined) {
    const vol = volumes.find((v) => v.id === volRef) ?? volumes.find((v) => v.name === volRef);
    if (!vol) return { ok: false, status: 404, code: 'not_found', message: `volume '${volRef}' not found` };
    const own = snapshots.filter((s) => s.spec.volume === vol.id);
    const hit = own.find((s) => s.id === snapRef) ?? own.find((s) => s.name === snapRef);
    if (hit) return { ok: true, snapshot: hit };
    const has = own.length ? `its snapshots: ${own.map((s) => s.name).join(', ')}` : 'it has no snapshots';
    return { ok: false, status: 404, code: 'not_found', message: `volume '${vol.name}' has no snapshot '${snapRef}' (${has})` };
  }
  const byId = snapshots.find((s) => s.id === ref);
  if (byId) return { ok: true, snapshot: byId };
  const named = snapshots.filter((s) => s.name === ref);
  if (named.length === 1) return { ok: true, snapshot: named[0]! };
  if (!named.length) return { ok: false, status: 404, code: 'not_found', message: `snapshot '${ref}' not found` };
  const candidates = named.map((s) => `${nameOf(s.spec.volume)}/${s.name}`).sort();
  return {
    ok: false,
    status: 409,
    code: 'ambiguous_ref',
    message: `snapshot '${ref}' is ambiguous: ${named.length} volumes have a snapshot of that name (${candidates.join(', ')}); name one as VOLUME/SNAPSHOT`,
  };
}
