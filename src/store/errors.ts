export class NotFoundError extends Error {
  constructor(
    readonly kind: string,
    readonly ref: string,
  ) {
    super(`${kind} '${ref}' not found`);
  }
}

export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
  }
}
