/**
 * API errors in the words of the command that caused them. The API names body fields
 * ("memoryMiB: must be at least 64"); a command knows which of its flags or arguments fills each
 * field, and says "--memory must be at least 64 MiB" instead. Pure.
 */
import { formatBytes } from '../common/bytes.ts';

/** How a command fills a body field: the flag or argument, and the unit the field counts in. */
type FlagOf = string | { flag: string; unit: 'MiB' | 'bytes' };

/** Body field path ("sizeBytes", "source.snapshot") to the command's flag or argument. */
export type FieldFlags = Record<string, FlagOf>;

interface Detail {
  path?: string;
  problem?: string;
  field?: string;
  limit?: number;
}

function amount(limit: number, unit: 'MiB' | 'bytes'): string {
  return unit === 'bytes' ? formatBytes(limit) : `${limit} MiB`;
}

/** The flag for a field, or for the nearest enclosing field a command maps ("memory.0.limitMiB" under "memory"). */
function flagFor(field: string, fields: FieldFlags): FlagOf | undefined {
  for (let f = field; f; f = f.includes('.') ? f.slice(0, f.lastIndexOf('.')) : '') if (fields[f] !== undefined) return fields[f];
  return undefined;
}

/**
 * The message to show, or undefined when no detail names a field the command maps (the API's
 * message stands then).
 */
export function inCliTerms(details: unknown, fields: FieldFlags): string | undefined {
  if (!Array.isArray(details)) return undefined;
  let mapped = false;
  const parts = (details as Detail[]).map((d) => {
    const of = d.field ? flagFor(d.field, fields) : undefined;
    if (!of || !d.problem) return `${d.path ?? ''}: ${d.problem ?? ''}`;
    mapped = true;
    const flag = typeof of === 'string' ? of : of.flag;
    const unit = typeof of === 'string' ? undefined : of.unit;
    if (/^missing required field/.test(d.problem)) return `${flag} is required`;
    const bound = /^must be (at least|at most) /.exec(d.problem);
    if (bound && unit && d.limit !== undefined) return `${flag} must be ${bound[1]} ${amount(d.limit, unit)}`;
    return `${flag} ${d.problem}`;
  });
  return mapped ? parts.join('; ') : undefined;
}
