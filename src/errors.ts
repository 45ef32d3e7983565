// A user error is a problem with the user's input (file, model, data, flags). The CLI
// prints its message and hint without a stack trace and exits 1; anything else is a bug.

export class UserError extends Error {
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
