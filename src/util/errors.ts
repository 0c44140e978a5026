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

/** Why the file system refused a path the user gave (an --out under a file, no permission, a full disk). */
const FILE_SYSTEM_REASONS: Record<string, string> = {
  ENOTDIR: 'a part of the path is a file, not a directory',
  EEXIST: 'a file is in the way of a directory',
  EISDIR: 'it is a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
};

/** A one-line message for a file-system error on a user-given path, or undefined for anything else. */
export function fileSystemMessage(e: unknown): string | undefined {
  const err = e as NodeJS.ErrnoException;
  const reason = err && typeof err.code === 'string' ? FILE_SYSTEM_REASONS[err.code] : undefined;
  if (!reason || typeof err.path !== 'string') return undefined;
  return `cannot ${err.syscall === 'open' || err.syscall === 'mkdir' || err.syscall === 'rename' ? 'write' : 'use'} ${err.path}: ${reason}; choose another location`;
}
