/** `outrig host-cluster`: hosts dedicated to a tenant and its networks, each with an instance principal certificate. */
import type { Command } from 'commander';
import type { HostCluster } from '../../model/host-cluster.ts';
import { contextOf } from '../context.ts';
import { collect, parseLabels } from '../parse.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';

const path = (ref: string) => `/v1/host-clusters/${encodeURIComponent(ref)}`;

export function hostClusterCommands(program: Command): void {
  const hc = program.command('host-cluster').description('hosts dedicated to a tenant and its virtual networks (802.1X port authentication)');
  hc.command('create <name>')
    .description('create a dedicated host cluster')
    .requiredOption('--network <network>', "the tenant's network the hosts' ports join (repeatable; the first is the port's)", collect, [])
    .option('--tenant <tenant>', 'tenant the hosts are dedicated to', 'default')
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .action(async (name: string, o: { network: string[]; tenant: string; label: string[] }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const c = await api.post<HostCluster>(
        '/v1/host-clusters',
        { name, tenant: o.tenant, networks: o.network, labels: parseLabels(o.label) },
        { name: 'NAME', tenant: '--tenant', networks: '--network' },
      );
      if (json) return printJson(c);
      process.stdout.write(`host cluster ${c.name} created (${c.id}) for tenant ${c.spec.tenant}\n`);
    });
  hc.command('list')
    .description('list host clusters')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: HostCluster[] }>('/v1/host-clusters');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'TENANT', 'HOSTS', 'AGE'],
        items.map((c) => [c.name, c.id, c.spec.tenant, c.status.principals.map((p) => p.hostName).join(',') || '-', age(c.createdAt)]),
      );
    });
  hc.command('show <cluster>')
    .description('show a host cluster and the principal certificate of each host')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const c = await api.get<HostCluster>(path(ref));
      if (json) return printJson(c);
      printDetails({
        name: c.name,
        id: c.id,
        tenant: c.spec.tenant,
        networks: c.spec.networks,
        hosts: c.status.principals.map(
          (p) => `${p.hostName}: principal ${p.serial}, networks ${p.segments.map((x) => `vnet-${x}`).join(',')}, expires ${p.notAfter}`,
        ),
        conditions: c.status.conditions,
        created: c.createdAt,
      });
    });
  hc.command('add-host <cluster> <host>')
    .description('dedicate a trusted host to the cluster: it gets an instance principal certificate naming the networks')
    .action(async (ref: string, host: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const c = await api.post<HostCluster>(`${path(ref)}/hosts`, { host });
      if (json) return printJson(c);
      const p = c.status.principals.find((x) => x.hostName === host || x.hostId === host);
      process.stdout.write(
        `host ${host} added to ${c.name}${p ? `; principal certificate ${p.serial} for ${p.segments.map((x) => `vnet-${x}`).join(',')}` : ''}\n`,
      );
    });
  hc.command('remove-host <cluster> <host>')
    .description('take a host out of the cluster; its principal certificate is revoked')
    .action(async (ref: string, host: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const c = await api.delete<HostCluster>(`${path(ref)}/hosts/${encodeURIComponent(host)}`);
      if (json) return printJson(c);
      process.stdout.write(`host ${host} removed from ${c.name}; its principal certificate is revoked\n`);
    });
  hc.command('delete <cluster>')
    .description('delete a host cluster with no hosts')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api } = contextOf(cmd);
      await api.delete(path(ref));
      process.stdout.write(`host cluster ${ref} deleted\n`);
    });
}
