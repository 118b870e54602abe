/**
 * Claims that must be unique across concurrent writers (controller replicas, parallel API calls):
 * guest addresses per network and network segment ids. A primary key decides; a writer that loses
 * the race reads again and picks another.
 */
import type { Kysely } from 'kysely';
import { ConflictError } from './errors.ts';
import { isUniqueViolation, type Clock } from './repository.ts';
import type { Database } from './schema.ts';

export interface AddressClaim {
  networkId: string;
  address: number;
  /** Who holds the address: an instance, or the network itself (the address its DHCP servers answer from). */
  instanceId: string;
}

const ATTEMPTS = 1000;

export class NetworkClaims {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
  ) {}

  async addresses(networkId?: string): Promise<AddressClaim[]> {
    let q = this.db.selectFrom('ip_allocations').select(['network_id', 'address', 'instance_id']);
    if (networkId) q = q.where('network_id', '=', networkId);
    const rows = await q.orderBy('network_id').orderBy('address').execute();
    return rows.map((r) => ({ networkId: r.network_id, address: Number(r.address), instanceId: r.instance_id }));
  }

  /** Claims the address `pick` chooses from those in use; undefined from `pick` means the subnet is full. */
  async claimAddress(networkId: string, instanceId: string, pick: (used: Set<number>) => number | undefined): Promise<number | undefined> {
    for (let i = 0; i < ATTEMPTS; i++) {
      const used = new Set((await this.addresses(networkId)).map((c) => c.address));
      const address = pick(used);
      if (address === undefined) return undefined;
      try {
        await this.db
          .insertInto('ip_allocations')
          .values({ network_id: networkId, address, instance_id: instanceId, created_at: this.clock().toISOString() })
          .execute();
        return address;
      } catch (e) {
        if (!isUniqueViolation(e)) throw e;
      }
    }
    throw new ConflictError(`could not claim an address on network ${networkId}: too many concurrent claims; try again`);
  }

  async releaseInstance(instanceId: string): Promise<number> {
    const r = await this.db.deleteFrom('ip_allocations').where('instance_id', '=', instanceId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async segments(): Promise<Map<number, string>> {
    const rows = await this.db.selectFrom('network_segments').select(['segment', 'network_id']).execute();
    return new Map(rows.map((r) => [Number(r.segment), r.network_id]));
  }

  /** False when another network holds the segment. */
  async claimSegment(segment: number, networkId: string): Promise<boolean> {
    try {
      await this.db.insertInto('network_segments').values({ segment, network_id: networkId }).execute();
      return true;
    } catch (e) {
      if (isUniqueViolation(e)) return false;
      throw e;
    }
  }

  async releaseSegments(networkId: string): Promise<void> {
    await this.db.deleteFrom('network_segments').where('network_id', '=', networkId).execute();
  }
}
