export class NotFoundError extends Error {
  constructor(
    readonly kind: string,
    readonly ref: string,
  ) {
    super(`${kind} '${ref}' not found`);
  }
}

export class ConflictError extends Error {
  constructor(
    message: string,
    readonly code = 'conflict',
  ) {
    super(message);
  }
}

/**
 * A reference that is one resource's id and another's name. Acting on either could act on the
 * wrong one (an enrolling host once chose a pending host's name as its id and was approved in its
 * place), so such a reference is refused and the caller told which ids to use.
 */
export class AmbiguousRefError extends ConflictError {
  constructor(kind: string, ref: string, matches: { id: string; name: string }[]) {
    super(
      `'${ref}' is ambiguous: it matches ${matches.length} ${kind}s (${matches.map((m) => `id ${m.id} named ${m.name}`).join('; ')}); use a reference that matches one`,
      'ambiguous_ref',
    );
  }
}
