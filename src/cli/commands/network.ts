/** `outrig network`: tenants' virtual networks. */
import { Option, type Command } from 'commander';
import type { Network } from '../../model/network.ts';
import { contextOf } from '../context.ts';
import { collect, parseIntStrict, parseLabels } from '../parse.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';

type NetworkView = Network & { addresses: { used: number; free: number }; instances: { name: string; address: string; mac: string; host?: string }[] };
const path = (ref: string) => `/v1/networks/${encodeURIComponent(ref)}`;

function hostsText(n: Network): string {
  return n.status.hosts.map((h) => `${h.hostName}:${h.state}`).join(',') || '-';
}

export function networkCommands(program: Command): void {
  const net = program.command('network').description("tenants' virtual networks (a bridge per network on each host, VXLAN between hosts)");
  net
    .command('create <name>')
    .description('create a network')
    .requiredOption('--subnet <cidr>', 'IPv4 subnet, e.g. 10.10.0.0/24')
    .option('--gateway <address>', 'keep this address for a router (no guest gets it)')
    .addOption(new Option('--segment <id>', 'VXLAN network id / VLAN id (default: the lowest free from 100)').argParser(parseIntStrict('--segment')))
    .option('--dhcp', 'serve guests their addresses by DHCP (each host answers its own guests; needs dnsmasq-base on the hosts)')
    .option('--tenant <tenant>', 'tenant that owns the network', 'default')
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .action(async (name: string, o: { subnet: string; gateway?: string; segment?: number; dhcp?: boolean; tenant: string; label: string[] }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const body = { name, subnet: o.subnet, gateway: o.gateway, segment: o.segment, dhcp: o.dhcp, tenant: o.tenant, labels: parseLabels(o.label) };
      const n = await api.post<Network>('/v1/networks', body, {
        name: 'NAME',
        subnet: '--subnet',
        gateway: '--gateway',
        segment: '--segment',
        tenant: '--tenant',
      });
      if (json) return printJson(n);
      const dhcp = n.spec.dhcp ? `, DHCP from ${n.spec.dhcp.server}` : '';
      process.stdout.write(
        `network ${n.name} created (${n.id}): ${n.spec.subnet}, segment ${n.spec.segment}${n.spec.gateway ? `, gateway ${n.spec.gateway}` : ''}${dhcp}, tenant ${n.spec.tenant}\n`,
      );
    });
  net
    .command('list')
    .description('list networks')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: NetworkView[] }>('/v1/networks');
      if (json) return printJson(items);
      printTable(
        ['NAME', 'ID', 'PHASE', 'TENANT', 'SUBNET', 'SEGMENT', 'ADDRESSES', 'HOSTS', 'AGE'],
        items.map((n) => [
          n.name,
          n.id,
          n.status.phase,
          n.spec.tenant,
          n.spec.subnet,
          n.spec.segment,
          `${n.addresses.used} used, ${n.addresses.free} free`,
          hostsText(n),
          age(n.createdAt),
        ]),
      );
    });
  net
    .command('show <network>')
    .description('show a network: its subnet, segment, addresses and the hosts that carry it')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const n = await api.get<NetworkView>(path(ref));
      if (json) return printJson(n);
      printDetails({
        name: n.name,
        id: n.id,
        phase: n.status.phase,
        message: n.status.message,
        tenant: n.spec.tenant,
        subnet: n.spec.subnet,
        gateway: n.spec.gateway,
        segment: n.spec.segment,
        dhcp: n.spec.dhcp ? `on, from ${n.spec.dhcp.server} (each host answers its own guests)` : 'off (static configuration)',
        addresses: `${n.addresses.used} used, ${n.addresses.free} free`,
        instances: n.instances.map((i) => `${i.name}: ${i.address} ${i.mac}${i.host ? ` on ${i.host}` : ''}`),
        hosts: n.status.hosts.map(
          (h) => `${h.hostName}: ${h.state}${h.peers.length ? `, floods to ${h.peers.join(' ')}` : ''}${h.error ? ` (${h.error})` : ''}`,
        ),
        created: n.createdAt,
      });
    });
  net
    .command('forget-host <network> <host>')
    .description(
      "vouch that a deleted host no longer has the network's bridge and VXLAN device (the machine was wiped or retired); the segment is freed once no host holds it",
    )
    .action(async (ref: string, host: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const n = await api.delete<Network>(`${path(ref)}/hosts/${encodeURIComponent(host)}`);
      if (json) return printJson(n);
      process.stdout.write(
        `network ${n.name}: host ${host} forgotten${n.status.phase === 'deleting' && !n.status.hosts.length ? '; the network and its segment are freed' : ''}\n`,
      );
    });
  net
    .command('delete <network>')
    .description('delete a network no instance uses')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const n = await api.delete<Network>(path(ref));
      if (json) return printJson(n);
      process.stdout.write(`network ${n.name} ${n.status.phase === 'deleting' ? 'is being deleted' : 'deleted'}\n`);
    });
}
