import type { Command } from 'commander';
import { formatBytes } from '../../common/bytes.ts';
import { getCondition } from '../../model/conditions.ts';
import type { Host } from '../../model/host.ts';
import { keyFingerprint } from '../../pki/index.ts';
import { contextOf } from '../context.ts';
import { age, mib, printDetails, printJson, printTable } from '../output.ts';

/** "12 GiB/50 GiB": free of total, as the host last reported. */
function diskFree(h: Host): string {
  const s = h.status.storage;
  return s ? `${formatBytes(s.freeBytes)}/${formatBytes(s.totalBytes)}` : '-';
}

/** The HostDiskPressure condition in a word: its reason when True, 'no' when False, '-' when unknown. */
function pressure(h: Host): string {
  const c = getCondition(h.status.conditions, 'HostDiskPressure');
  return !c || c.status === 'Unknown' ? '-' : c.status === 'True' ? c.reason : 'no';
}

/** "LowFreeSpace: 1.2 GiB free of 50 GiB, ..." or "no: ...". */
function pressureDetail(h: Host): string | undefined {
  const c = getCondition(h.status.conditions, 'HostDiskPressure');
  return c ? `${pressure(h)}: ${c.message}` : undefined;
}

export function hostCommands(program: Command): void {
  const host = program.command('host').description('servers that run instances');

  host
    .command('list')
    .description('list hosts (hosts waiting for approval show phase pending-approval)')
    .option('--pending', 'only hosts waiting for approval')
    .action(async (o: { pending?: boolean }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const all = (await api.get<{ items: Host[] }>('/v1/hosts')).items;
      const items = o.pending ? all.filter((h) => h.status.phase === 'pending-approval') : all;
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'PHASE', 'TRUST', 'ACCEL', 'VCPUS', 'MEMORY', 'DISK FREE', 'DISK PRESSURE', 'AGENT', 'AGE'],
        items.map((h) => [
          h.name,
          h.id,
          h.status.phase,
          h.status.trust?.state ?? '-',
          h.status.inventory?.accel ?? '-',
          h.status.allocated && h.status.allocatable ? `${h.status.allocated.vcpus}/${h.status.allocatable.vcpus}` : '-',
          h.status.allocated && h.status.allocatable ? `${mib(h.status.allocated.memoryMiB)}/${mib(h.status.allocatable.memoryMiB)}` : '-',
          diskFree(h),
          pressure(h),
          h.status.agent.connected ? 'connected' : 'disconnected',
          age(h.createdAt),
        ]),
      );
    });

  host
    .command('show <host>')
    .description('show a host, its inventory and capacity')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const h = await api.get<Host>(`/v1/hosts/${encodeURIComponent(ref)}`);
      if (json) return printJson(h);
      const inv = h.status.inventory;
      printDetails({
        name: h.name,
        id: h.id,
        phase: h.status.phase,
        cordoned: h.spec.cordoned,
        agent: h.status.agent,
        trust: h.status.trust
          ? {
              state: h.status.trust.state,
              requestedAt: h.status.trust.requestedAt,
              // What 'outrig agent --print-identity' shows on the host: compare before approving.
              keyFingerprint: keyFingerprint(h.status.trust.publicKey),
              approvedBy: h.status.trust.approvedBy,
              certificateSerial: h.status.trust.certSerial,
              certificateExpires: h.status.trust.certNotAfter,
              labels: h.status.trust.labels,
            }
          : undefined,
        accelerator: inv ? `${inv.accel} (kvm ${inv.kvm.usable ? 'usable' : 'unusable'}: ${inv.kvm.reason})` : undefined,
        cpu: inv ? `${inv.cpu.count} x ${inv.cpu.model} (${inv.cpu.sockets} socket(s))` : undefined,
        memory: inv ? mib(inv.memory.totalMiB) : undefined,
        allocatable: h.status.allocatable,
        allocated: h.status.allocated,
        disk: h.status.storage
          ? {
              free: `${formatBytes(h.status.storage.freeBytes)} of ${formatBytes(h.status.storage.totalBytes)}`,
              pressure: pressureDetail(h),
              volumes: `${formatBytes(h.status.storage.provisionedBytes)} provisioned, may still allocate ${formatBytes(h.status.storage.mayAllocateBytes)}`,
              promised: h.status.storage.promisedBytes === undefined ? undefined : formatBytes(h.status.storage.promisedBytes),
              canStillPromise: h.status.storage.canPromiseBytes === undefined ? undefined : formatBytes(h.status.storage.canPromiseBytes),
              reportedAt: h.status.storage.reportedAt,
            }
          : 'not reported',
        numa: inv?.numa,
        nics: inv?.nics,
        networks: inv?.network
          ? {
              backend: inv.network.backend ?? 'none',
              why: inv.network.reason,
              underlay: inv.network.underlay
                ? `${inv.network.underlay.address} on ${inv.network.underlay.dev} (MTU ${inv.network.underlay.mtu})`
                : inv.network.underlayError,
              probed: inv.network.backends.map((b) => `${b.name}: ${b.available ? 'available' : 'unavailable'} (${b.reason})`),
            }
          : undefined,
        disks: inv?.disks,
        pciDevices: inv ? inv.pci.length : undefined,
        os: inv?.os,
        conditions: h.status.conditions,
        labels: h.labels,
      });
    });

  for (const action of ['cordon', 'uncordon'] as const) {
    host
      .command(`${action} <host>`)
      .description(action === 'cordon' ? 'stop placing new instances on a host' : 'allow placing instances on a host again')
      .action(async (ref: string, _o, cmd: Command) => {
        const { api, json } = contextOf(cmd);
        const h = await api.post<Host>(`/v1/hosts/${encodeURIComponent(ref)}/${action}`);
        if (json) return printJson(h);
        process.stdout.write(`host ${h.name} ${action}ed (phase ${h.status.phase})\n`);
      });
  }

  host
    .command('delete <host...>')
    .description('forget hosts that hold nothing (waiting, rejected, revoked, or disconnected and empty); their certificates are revoked')
    .action(async (refs: string[], _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      for (const ref of refs) {
        await api.delete(`/v1/hosts/${encodeURIComponent(ref)}`);
        if (!json) process.stdout.write(`host ${ref} deleted\n`);
      }
      if (json) printJson(refs.map((ref) => ({ host: ref, deleted: true })));
    });

  const trustActions = {
    approve: { desc: 'admit a host waiting for approval: it gets its certificate and joins', done: 'approved' },
    reject: { desc: "turn away a host waiting for approval; it stays refused ('host delete' forgets it instead, and it may ask again)", done: 'rejected' },
    revoke: { desc: "revoke a host's certificates: its connections are cut at once and it cannot reconnect", done: 'revoked' },
  } as const;
  for (const [action, { desc, done }] of Object.entries(trustActions)) {
    host
      .command(`${action} <host...>`)
      .description(desc)
      .action(async (refs: string[], _o, cmd: Command) => {
        const { api, json } = contextOf(cmd);
        const out: Host[] = [];
        for (const ref of refs) {
          const h = await api.post<Host>(`/v1/hosts/${encodeURIComponent(ref)}/${action}`);
          out.push(h);
          if (!json) process.stdout.write(`host ${h.name} (${h.id}) ${done}; phase ${h.status.phase}\n`);
        }
        if (json) printJson(out);
      });
  }
}
