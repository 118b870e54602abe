/** Condition helpers, free of schema code so light clients (the CLI) can use them cheaply. */
import type { Condition } from './common.ts';

/**
 * Sets a condition, keeping lastTransitionTime unless the status actually changes.
 * Returns a new array; conditions are value objects.
 */
export function setCondition(conditions: Condition[], c: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const old = conditions.find((x) => x.type === c.type);
  const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : now.toISOString();
  const next = { ...c, lastTransitionTime };
  if (old && old.status === next.status && old.reason === next.reason && old.message === next.message) return conditions;
  return [...conditions.filter((x) => x.type !== c.type), next];
}

export function getCondition(conditions: Condition[], type: string): Condition | undefined {
  return conditions.find((c) => c.type === type);
}
