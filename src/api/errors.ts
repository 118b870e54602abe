/** API errors: JSON `{ error: { code, message, details } }` with a fitting HTTP status (DESIGN.md). */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ServiceError, TrustError } from '../controller/index.ts';
import { NAME_PATTERN, NAME_RULE } from '../model/common.ts';
import { ConflictError, NotFoundError } from '../store/index.ts';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

/**
 * What is wrong with one field of a request. `field` is its path in the body ("memoryMiB",
 * "source.snapshot"), so a client can name its own flag for it; `limit` is the bound a number broke.
 */
interface FieldProblem {
  path: string;
  problem: string;
  field?: string;
  limit?: number;
}

/** An error about one body field, said as "<field> <problem>", with the field in the details for clients to rephrase. */
function fieldError(field: string, problem: string, status = 400, code = 'invalid_request'): ApiError {
  const details: FieldProblem[] = [{ path: `body.${field}`, field, problem }];
  return new ApiError(status, code, `${field} ${problem}`, details);
}

/** A refusal of the controller's services or trust in the API's terms; anything else as it is. */
export function toApiError(e: unknown): unknown {
  if (e instanceof ServiceError)
    return e.field ? fieldError(e.field.name, e.field.problem, e.status, e.code) : new ApiError(e.status, e.code, e.message, e.details);
  if (e instanceof TrustError) return new ApiError(e.statusCode, e.code, e.message);
  return e;
}

/** Runs a call of the controller, turning its refusals into ApiErrors (for routes that look at the error before it is answered). */
export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toApiError(e);
  }
}

export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }),
});

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Turns AJV's errors into sentences that name the field, without the schema's internals (a regular expression, ">="). */
function describeValidation(context: string, errors: AjvError[]): { message: string; details: FieldProblem[] } {
  const details = errors.map((e): FieldProblem => {
    const at = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const path = `${context}${e.instancePath.replace(/\//g, '.')}`;
    const field = context === 'body' && at ? at : undefined;
    const join = (name: string) => (at ? `${at}.${name}` : name);
    if (e.keyword === 'additionalProperties') return { path, problem: `unknown field '${String(e.params.additionalProperty)}'` };
    if (e.keyword === 'required') {
      const missing = String(e.params.missingProperty);
      return { path, problem: `missing required field '${missing}'`, field: context === 'body' ? join(missing) : undefined };
    }
    if (e.keyword === 'minimum' || e.keyword === 'maximum') {
      const limit = Number(e.params.limit);
      return { path, problem: `must be ${e.keyword === 'minimum' ? 'at least' : 'at most'} ${limit}`, field, limit };
    }
    if (e.keyword === 'pattern' && e.params.pattern === NAME_PATTERN) return { path, problem: `must be ${NAME_RULE}`, field };
    return { path, problem: e.message ?? e.keyword, field };
  });
  const message = details.map((d) => `${d.path}: ${d.problem}`).join('; ');
  return { message, details };
}

export function errorHandler(raw: FastifyError & { validation?: AjvError[]; validationContext?: string }, req: FastifyRequest, reply: FastifyReply) {
  const err = toApiError(raw) as typeof raw;
  if (err instanceof ApiError) return reply.status(err.statusCode).send({ error: { code: err.code, message: err.message, details: err.details } });
  if (err instanceof NotFoundError) return reply.status(404).send({ error: { code: 'not_found', message: err.message } });
  if (err instanceof ConflictError) return reply.status(409).send({ error: { code: err.code, message: err.message } });
  if (err.validation) {
    const { message, details } = describeValidation(err.validationContext ?? 'request', err.validation);
    return reply.status(400).send({ error: { code: 'invalid_request', message, details } });
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return reply.status(415).send({ error: { code: 'unsupported_media_type', message: err.message } });
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    const code = err.code?.startsWith('FST_ERR_CTP') ? 'malformed_body' : 'bad_request';
    return reply.status(err.statusCode).send({ error: { code, message: err.message } });
  }
  req.log.error({ err }, 'request failed');
  return reply.status(500).send({ error: { code: 'internal', message: 'internal error; see the controller log' } });
}
