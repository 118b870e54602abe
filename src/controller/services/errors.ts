/**
 * Why a service refused a request, in the API's terms without depending on it: an HTTP-like status,
 * a stable code and a sentence for people. `field` names the input field at fault, so the API can say
 * "<field> <problem>" and clients can name their own flag for it.
 */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly field?: { name: string; problem: string },
  ) {
    super(message);
  }

  /** A problem with one input field, said as "<field> <problem>". */
  static field(name: string, problem: string, status = 400, code = 'invalid_request'): ServiceError {
    return new ServiceError(status, code, `${name} ${problem}`, undefined, { name, problem });
  }
}
