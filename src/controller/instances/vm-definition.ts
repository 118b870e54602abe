/** The agent operation a planned instance step becomes: the VM definition for a start, or the small ops. */
import type { AgentOp, VmDefinition } from '../../model/agent-protocol.ts';
import type { Instance } from '../../model/instance.ts';
import type { Ctx } from '../context.ts';
import { poolMembers, poolModel } from '../memory/pools.ts';
import { TerminalError } from '../runtime/reconciler.ts';
import type { DesiredDisk } from './plan.ts';

export async function instanceOp(
  ctx: Ctx,
  inst: Instance,
  opId: string,
  kind: AgentOp['kind'],
  disks: DesiredDisk[],
  volumeId?: string,
  force?: boolean,
): Promise<AgentOp | { error: string }> {
  switch (kind) {
    case 'vm.stop':
      return { opId, kind, instanceId: inst.id, generation: inst.generation, force: force || undefined };
    case 'vm.delete':
      return { opId, kind, instanceId: inst.id };
    case 'vm.attach':
      return { opId, kind, instanceId: inst.id, volumeId: volumeId!, tag: disks.find((d) => d.volumeId === volumeId)?.tag };
    case 'vm.detach':
      return { opId, kind, instanceId: inst.id, volumeId: volumeId! };
    case 'vm.start':
    case 'vm.restart': {
      const vm = await vmDefinition(ctx, inst, disks);
      if ('error' in vm) return vm;
      return kind === 'vm.restart' ? { opId, kind, instanceId: inst.id, vm, force: force || undefined } : { opId, kind, instanceId: inst.id, vm };
    }
    default:
      return { error: `operation ${kind} is not an instance operation` };
  }
}

async function vmDefinition(ctx: Ctx, inst: Instance, disks: DesiredDisk[]): Promise<VmDefinition | { error: string }> {
  const vm: VmDefinition = {
    name: inst.name,
    vcpus: inst.spec.vcpus,
    memoryMiB: inst.spec.memoryMiB,
    memory: await memoryPortions(ctx, inst),
    kernelArgs: inst.spec.kernelArgs,
    disks: disks.map((d) => ({ volumeId: d.volumeId, boot: d.boot, tag: d.tag })),
    forwardPorts: inst.spec.forwardPorts,
    nics: await vmNics(ctx, inst),
    generation: inst.generation,
    restartSeq: inst.spec.restartSeq,
  };
  if (inst.spec.image) {
    const image = await ctx.store.images.find(inst.spec.image);
    if (!image || image.status.phase !== 'ready') return { error: `image '${inst.spec.image}' is not available` };
    vm.readyMarker = image.spec.readyMarker;
    if (image.spec.kind === 'kernel') {
      vm.image = { id: image.id, name: image.name, cmdline: image.spec.cmdline, readyMarker: image.spec.readyMarker, files: image.spec.files };
    }
  }
  vm.readyMarker = inst.spec.readyMarker ?? vm.readyMarker;
  if (!vm.image && !disks.some((d) => d.boot)) return { error: 'the instance has neither a kernel image nor a boot volume' };
  return vm;
}

async function vmNics(ctx: Ctx, inst: Instance): Promise<VmDefinition['nics']> {
  if (!inst.spec.nics?.length) return undefined;
  const out: NonNullable<VmDefinition['nics']> = [];
  for (const n of inst.spec.nics) {
    const net = await ctx.store.networks.get(n.network);
    // Retrying cannot bring it back: only a change of the instance's NICs can (and that change wakes it).
    if (!net) throw new TerminalError(`network ${n.networkName} of instance ${inst.name} is gone`);
    out.push({
      networkId: n.network,
      segment: net.spec.segment,
      mac: n.mac,
      address: n.address,
      prefix: n.prefix,
      gateway: n.gateway,
      dhcpServer: net.spec.dhcp?.server,
    });
  }
  return out;
}

/** The VM's memory per tier, with the host NUMA node each tier sits on where the host has one. */
async function memoryPortions(ctx: Ctx, inst: Instance): Promise<VmDefinition['memory']> {
  const m = inst.status.memory;
  if (!m) return undefined;
  const [pools, hosts] = await Promise.all([ctx.store.memoryPools.list(), ctx.store.hosts.list()]);
  const pool = pools.find((p) => p.name === m.pool);
  const tiers = pool ? poolModel(pool, poolMembers(pools, hosts).get(pool.id)!, ctx.allocation).tiers : [];
  return m.portions.map((p) => ({ ...p, hostNode: tiers.find((t) => t.name === p.tier)?.hostNode }));
}
