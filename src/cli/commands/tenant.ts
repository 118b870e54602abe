import type { Command } from 'commander';
import type { Tenant } from '../../model/tenant.ts';
import { contextOf } from '../context.ts';
import { collect, parseLabels } from '../parse.ts';
import { age, printDetails, printJson, printTable } from '../output.ts';

export function tenantCommands(program: Command): void {
  const tenant = program.command('tenant').description('owners of instances');
  tenant
    .command('list')
    .description('list tenants')
    .action(async (_o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const { items } = await api.get<{ items: Tenant[] }>('/v1/tenants');
      if (json) return printJson(items);
      printTable(['NAME', 'ID', 'PHASE', 'LABELS', 'AGE'], items.map((t) => [t.name, t.id, t.status.phase, Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', age(t.createdAt)]));
    });
  tenant
    .command('create <name>')
    .description('create a tenant')
    .option('--label <key=value>', 'label (repeatable)', collect, [])
    .action(async (name: string, o: { label: string[] }, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const t = await api.post<Tenant>('/v1/tenants', { name, labels: parseLabels(o.label) });
      if (json) return printJson(t);
      process.stdout.write(`tenant ${t.name} created (${t.id})\n`);
    });
  tenant
    .command('show <tenant>')
    .description('show a tenant')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const t = await api.get<Tenant>(`/v1/tenants/${encodeURIComponent(ref)}`);
      if (json) return printJson(t);
      printDetails({ name: t.name, id: t.id, phase: t.status.phase, labels: t.labels, createdAt: t.createdAt });
    });
  tenant
    .command('delete <tenant>')
    .description('delete a tenant that has no instances')
    .action(async (ref: string, _o, cmd: Command) => {
      const { api, json } = contextOf(cmd);
      const t = await api.get<Tenant>(`/v1/tenants/${encodeURIComponent(ref)}`);
      await api.delete(`/v1/tenants/${t.id}`);
      if (json) return printJson({ id: t.id, name: t.name, deleted: true });
      process.stdout.write(`tenant ${t.name} deleted\n`);
    });
}
