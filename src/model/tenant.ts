import { Type, type Static } from 'typebox';
import { Condition, resourceSchema, type Resource } from './common.ts';
import { EntitlementSpec } from './memory.ts';

export const TenantSpec = Type.Object(
  {
    /** The tenant's share of each memory pool it may use; a tenant with none may use any pool, with no guarantee. */
    memory: Type.Optional(Type.Array(EntitlementSpec, { maxItems: 64 })),
  },
  { additionalProperties: false },
);
export type TenantSpec = Static<typeof TenantSpec>;

export const TenantStatus = Type.Object({ phase: Type.String(), conditions: Type.Array(Condition) });
export type TenantStatus = Static<typeof TenantStatus>;

export const TenantResource = resourceSchema('Tenant', TenantSpec, TenantStatus);
export type Tenant = Resource<TenantSpec, TenantStatus>;

export const DEFAULT_TENANT = 'default';
