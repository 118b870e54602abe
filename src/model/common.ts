/** The resource shape every Outrig noun shares (DESIGN.md: Resources). */
import { Type, type Static, type TSchema } from 'typebox';

export const NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
/** NAME_PATTERN for people, completing "a name must be ...". */
export const NAME_RULE = '1 to 63 lower-case letters, digits and dashes, starting and ending with a letter or digit (like web-1)';

export const Name = Type.String({
  pattern: NAME_PATTERN,
  description: `a name: ${NAME_RULE}`,
});

export const Labels = Type.Record(Type.String({ minLength: 1, maxLength: 253 }), Type.String({ maxLength: 1024 }), {
  description: 'free key/value metadata',
});

const ConditionStatus = Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]);

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
