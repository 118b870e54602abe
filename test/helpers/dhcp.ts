/** What the tests read of the agents' DHCP servers (src/network/dhcp.ts) on this machine. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DHCP_RUN_DIR } from '../../src/network/dhcp.ts';
import type { Instance } from '../../src/model/instance.ts';
import type { DhcpLease } from '../../src/network/index.ts';

export function netnsNames(): string[] {
  const out = execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as { name: string }[]).map((n) => n.name) : [];
}

/** The DHCP servers of a segment on this machine (every agent's), from their run directories. */
export function dhcpServers(segment: number) {
  if (!existsSync(DHCP_RUN_DIR)) return [];
  return readdirSync(DHCP_RUN_DIR)
    .filter((d) => d.startsWith(`outrig-dhcp-${segment}-`))
    .map((d) => {
      const dir = join(DHCP_RUN_DIR, d);
      const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
      return { dir, leases: JSON.parse(read('leases.json') || '[]') as DhcpLease[], log: read('dnsmasq.log') };
    });
}

/**
 * One server per guest's host, each holding and having acknowledged only its own guest, and never
 * having heard the other guests (their requests never crossed to it).
 */
export function assertServersApart(segment: number, guests: Instance[]): void {
  const servers = dhcpServers(segment);
  assert.equal(servers.length, guests.length, `one DHCP server per guest's host: ${servers.map((x) => x.dir).join(' ')}`);
  for (const mine of guests) {
    const nic = mine.spec.nics![0]!;
    const server = servers.find((x) => x.leases.some((l) => l.instanceId === mine.id));
    assert.ok(server, `a server has ${mine.name}'s lease`);
    assert.deepEqual(
      server.leases.map((l) => l.mac),
      [nic.mac],
    );
    assert.match(server.log, new RegExp(`DHCPACK\\(dhcp0\\) ${nic.address.replace(/\./g, '\\.')} ${nic.mac}`));
    for (const other of guests.filter((g) => g !== mine))
      assert.ok(!server.log.includes(other.spec.nics![0]!.mac), `${mine.name}'s server never heard ${other.name}`);
  }
}
