// User errors (bad input, bad options) are printed as one line without a stack trace by the CLI;
// anything else is a bug and keeps its stack.

export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserFacing(e: unknown): e is Error {
  return e instanceof UserError || (e instanceof Error && e.name === 'GraphError');
}
