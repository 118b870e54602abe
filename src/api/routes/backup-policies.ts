import { isAbsolute, normalize } from 'node:path';
import { Type } from 'typebox';
import { BackupPolicyResource, Retention, type BackupPolicySpec } from '../../model/backup.ts';
import { Labels, Name } from '../../model/common.ts';
import { retentionProblem, scheduleProblem } from '../../controller/index.ts';
import { ApiError } from '../errors.ts';
import type { Api, ApiServices } from '../server.ts';
import { errors, listOf, MetadataFields, RefParams } from '../schemas.ts';

const Schedule = Type.String({ minLength: 1, maxLength: 200, description: 'cron expression in UTC: minute hour day-of-month month day-of-week' });
const Repository = Type.String({ minLength: 1, maxLength: 4096, description: "repository directory as the hosts see it (default: the cluster's)" });

const CreatePolicy = Type.Object(
  {
    name: Name,
    schedule: Schedule,
    instanceLabels: Type.Optional(Labels),
    retention: Retention,
    repository: Type.Optional(Repository),
    paused: Type.Optional(Type.Boolean()),
    ...MetadataFields,
  },
  { additionalProperties: false },
);

const PatchPolicy = Type.Object(
  { schedule: Type.Optional(Schedule), instanceLabels: Type.Optional(Labels), retention: Type.Optional(Retention), paused: Type.Optional(Type.Boolean()) },
  { additionalProperties: false, minProperties: 1 },
);

function check(spec: BackupPolicySpec): void {
  const bad = scheduleProblem(spec.schedule) ?? retentionProblem(spec.retention);
  if (bad) throw new ApiError(400, 'invalid_request', bad);
  if (!isAbsolute(spec.repository)) throw new ApiError(400, 'invalid_request', `repository must be an absolute path, got '${spec.repository}'`);
}

export function backupPolicyRoutes(app: Api, s: ApiServices): void {
  const path = '/backup-policies';
  app.get(path, { schema: { tags: ['backups'], response: { 200: listOf(BackupPolicyResource) } } }, async () => ({
    items: await s.store.backupPolicies.list(),
  }));

  app.get(`${path}/:ref`, { schema: { tags: ['backups'], params: RefParams, response: { 200: BackupPolicyResource, ...errors } } }, async (req) =>
    s.store.backupPolicies.mustFind(req.params.ref),
  );

  app.post(
    path,
    {
      schema: {
        tags: ['backups'],
        summary: 'Back up the boot volumes of instances with these labels on a schedule, keeping what the retention rules say',
        body: CreatePolicy,
        response: { 201: BackupPolicyResource, ...errors },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const spec: BackupPolicySpec = {
        schedule: b.schedule.trim(),
        instanceLabels: b.instanceLabels ?? {},
        retention: b.retention,
        repository: b.repository ? normalize(b.repository) : s.controller.backups.defaultRepository,
        paused: b.paused ?? false,
      };
      check(spec);
      return reply.status(201).send(await s.controller.backupPolicies.create({ name: b.name, labels: b.labels, annotations: b.annotations, spec }));
    },
  );

  app.patch(
    `${path}/:ref`,
    {
      schema: {
        tags: ['backups'],
        summary: 'Change the schedule, selection, retention, or pause',
        params: RefParams,
        body: PatchPolicy,
        response: { 200: BackupPolicyResource, ...errors },
      },
    },
    async (req) => {
      const p = await s.store.backupPolicies.mustFind(req.params.ref);
      const spec: BackupPolicySpec = { ...p.spec, ...req.body, schedule: (req.body.schedule ?? p.spec.schedule).trim() };
      check(spec);
      return s.controller.backupPolicies.change(p.id, spec);
    },
  );

  app.post(
    `${path}/:ref/run`,
    {
      schema: {
        tags: ['backups'],
        summary: 'Run the policy now (its schedule stays as it is)',
        params: RefParams,
        response: { 202: BackupPolicyResource, ...errors },
      },
    },
    async (req, reply) => {
      return reply.status(202).send(await s.controller.backupPolicies.runNow(req.params.ref));
    },
  );

  app.delete(
    `${path}/:ref`,
    {
      schema: {
        tags: ['backups'],
        summary: 'Delete the policy; the backups it made stay (delete them on their own)',
        params: RefParams,
        response: { 200: BackupPolicyResource, ...errors },
      },
    },
    async (req) => s.controller.backupPolicies.remove(req.params.ref),
  );
}
