/** Placement questions the API asks before it accepts a request (room for a volume), and hosts' capacity. */
import type { Host, HostStorage } from '../../model/host.ts';
import type { Ctx } from '../context.ts';
import { mayPlace } from '../host-clusters/plan.ts';
import { capacity } from '../instances/placement.ts';
import { chooseVolumeHost, fitsDisk, type DiskFit, type DiskNeed } from '../placement/disk-space.ts';
import type { SchedulableHost } from '../placement/scheduler.ts';

export class PlacementService {
  constructor(private readonly ctx: Ctx) {}

  capacity(o: { excludeVolume?: string } = {}): Promise<(SchedulableHost & { host: Host })[]> {
    return capacity(this.ctx, o);
  }

  /** The host's disk space as placement sees it: its agent's latest report if connected, else the recorded one. */
  currentStorage(h: Host): HostStorage | undefined {
    return this.ctx.liveness.currentStorage(h, this.ctx.hub().storage(h.id));
  }

  /** The host's last heartbeat as this controller heard it (the stored one is recorded only every few minutes). */
  lastHeartbeat(h: Host): Date | undefined {
    return this.ctx.liveness.lastHeartbeat(h);
  }

  /** Whether a host can take `need` now (a host without a storage report can). */
  async diskFit(hostId: string, need: DiskNeed, o: { excludeVolume?: string } = {}): Promise<DiskFit> {
    const h = (await this.capacity(o)).find((x) => x.id === hostId);
    return fitsDisk(h?.name ?? hostId, h?.disk, need, this.ctx.allocation.diskOvercommit);
  }

  /** Whether some ready host a volume of the tenant may go to can hold `need` now, and whether any ever could. */
  async diskFitAnywhere(tenant: string, need: DiskNeed): Promise<{ ok: true } | { ok: false; never: boolean; message: string }> {
    const hosts = (await this.capacity()).filter((h) => mayPlace(tenant, h.dedicatedTo));
    const ready = hosts.filter((h) => h.phase === 'ready' && !h.cordoned);
    // With no host ready now it may wait for one; but not when every host it could ever go to reports a disk too small for it.
    const candidates = ready.length ? ready : hosts.every((h) => h.disk) ? hosts : [];
    if (!candidates.length) return { ok: true };
    const c = chooseVolumeHost(
      candidates.map((h) => ({ id: h.id, name: h.name, room: h.disk, freeMemoryMiB: h.allocatable.memoryMiB - h.allocated.memoryMiB })),
      need,
      this.ctx.allocation.diskOvercommit,
    );
    if (!ready.length) return c.ok || !c.never ? { ok: true } : c;
    return c.ok ? { ok: true } : c;
  }
}
