/** The VMs an earlier agent left on this host: their directories, with what each says about itself. */
import type { QemuDriver, VmBootState, VmSpec } from '../hypervisor/index.ts';

interface LeftVm {
  id: string;
  spec: VmSpec;
  boot?: VmBootState;
  /** Its QEMU's pid if it still runs. */
  pid?: number;
}

/** One at a time, so a VM is taken over before the next is looked at. A directory without a readable spec is skipped. */
export async function* leftVms(driver: Pick<QemuDriver, 'listIds' | 'readSpec' | 'readBootState' | 'runningPid'>): AsyncGenerator<LeftVm> {
  for (const id of await driver.listIds()) {
    const spec = await driver.readSpec(id);
    if (!spec) continue;
    const boot = (await driver.readBootState(id)) ?? undefined;
    const pid = (await driver.runningPid(id)) ?? undefined;
    yield { id, spec, boot, pid };
  }
}
