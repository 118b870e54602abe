/**
 * Adoption of running VMs: a starting agent's VM manager takes over what an earlier agent left
 * (VM directories under <data>/vms; left-vms.ts reads them). Running VMs keep running and are
 * watched again; stopped ones are known, so the controller hears of them.
 */
import { join } from 'node:path';
import { QemuDriver } from '../hypervisor/index.ts';
import { VmManager, type VmManagerOptions } from './vm-manager.ts';

export async function adoptVms(dataDir: string, o: Omit<VmManagerOptions, 'driver'>): Promise<VmManager> {
  const vms = new VmManager({ ...o, driver: new QemuDriver({ vmsDir: join(dataDir, 'vms') }) });
  await vms.adoptAll();
  return vms;
}
