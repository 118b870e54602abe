/** Host use cases the API calls: cordon and uncordon. */
import type { Host } from '../../model/host.ts';
import type { Ctx } from '../context.ts';

export class HostService {
  constructor(private readonly ctx: Ctx) {}

  /** Stops (or allows again) placing new instances on the host; what runs there stays. */
  async cordon(ref: string, cordoned: boolean): Promise<Host> {
    const { store, runtime } = this.ctx;
    const h = await store.hosts.mustFind(ref);
    await store.hosts.update(h.id, (cur) => ({ spec: { ...cur.spec, cordoned } }));
    await runtime.reconcileNow('host', h.id);
    return store.hosts.mustFind(h.id);
  }
}
