/** An error the user caused (bad flag, missing file, corrupt image, wrong checkpoint). The CLI prints its message
 *  as one line and exits with code 2; a stack trace is shown only with --verbose. */
export class UserError extends Error {
  readonly exitCode: number = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Throws a UserError unless `condition` holds. */
export function ensure(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new UserError(typeof message === 'string' ? message : message());
}
