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

const FS_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or folder', EISDIR: 'it is a folder', ENOTDIR: 'a part of the path is a file, not a folder',
  EEXIST: 'a file is in the way', EACCES: 'permission denied', EPERM: 'not permitted', EROFS: 'read-only file system',
  ENAMETOOLONG: 'the name is too long', ENOSPC: 'no space left on the device', ELOOP: 'too many levels of symbolic links',
};

/** Why a file-system call failed, in words ("no such file or folder"); the system's message for rarer codes. */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return (err.code !== undefined ? FS_REASONS[err.code] : undefined) ?? err.message;
}

/** A file-system call on a user's path failed: "cannot <what> <target>: <why>". */
export class FileSystemError extends UserError {
  constructor(readonly what: string, readonly target: string, readonly reason: string, hint?: string) {
    super(`cannot ${what} ${target}: ${reason}`, hint);
    this.name = 'FileSystemError';
  }
}

export function fsUserError(what: string, target: string, e: unknown, hint?: string): FileSystemError {
  return new FileSystemError(what, target, fsReason(e), hint);
}
