/** The resource shape every Outrig noun shares (DESIGN.md: Resources). */
import { Type, type Static, type TSchema } from 'typebox';

export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

export const Name = Type.String({
  pattern: NAME_PATTERN,
  description: 'lower-case letters, digits and dashes; 1-63 characters; starts and ends with a letter or digit',
});

export const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 1024 }), {
  description: 'free key/value metadata',
});

export const ConditionStatus = Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]);

export const Condition = Type.Object({
  type: Type.String(),
  status: ConditionStatus,
  reason: Type.String(),
  message: Type.String(),
  lastTransitionTime: Type.String(),
});
export type Condition = Static<typeof Condition>;

export function resourceSchema<S extends TSchema, St extends TSchema>(kind: string, spec: S, status: St) {
  return Type.Object(
    {
      id: Type.String(),
      name: Type.String(),
      labels: Labels,
      annotations: Labels,
      spec,
      status,
      createdAt: Type.String(),
      updatedAt: Type.String(),
      generation: Type.Integer(),
    },
    { $id: kind, title: kind },
  );
}

export interface Resource<S, St> {
  id: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: S;
  status: St;
  createdAt: string;
  updatedAt: string;
  generation: number;
}

export { getCondition, setCondition } from './conditions.ts';
