// The one mapping of file-system errors on user paths (a full disk, no permission, a read-only mount, a name too
// long, a file where a folder is expected and the reverse) to one-line UserErrors naming the path and the cause.
// The CLI entry applies it to whatever a command throws, so no command needs its own try/catch for these.
import { UserError } from '../errors.js';
import { targetOfTemp } from './atomic.js';

/** errno code → what the user reads. */
export const FS_ERROR_CAUSES: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENAMETOOLONG: 'a name in the path is too long',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder, a file was expected',
};

/** What the failed system call was doing. */
const ACTIONS: Readonly<Record<string, string>> = {
  open: 'cannot open', read: 'cannot read', write: 'cannot write', rename: 'cannot write', mkdir: 'cannot create the folder',
  scandir: 'cannot list', opendir: 'cannot list', unlink: 'cannot remove', rmdir: 'cannot remove', rm: 'cannot remove',
  copyfile: 'cannot copy to', stat: 'cannot read', lstat: 'cannot read', access: 'cannot access', fsync: 'cannot write', close: 'cannot write',
};

interface ErrnoLike { code?: unknown; syscall?: unknown; path?: unknown; dest?: unknown; message?: unknown }

/** A UserError for a file-system error with one of FS_ERROR_CAUSES' codes, else undefined. Temporary names
 *  (`.x.tmp-<pid>-<time>`) are reported as the file they stand for. */
export function userErrorFromFs(err: unknown): UserError | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as ErrnoLike;
  const code = typeof e.code === 'string' ? e.code : undefined;
  if (!code || !(code in FS_ERROR_CAUSES)) return undefined;
  const syscall = typeof e.syscall === 'string' ? e.syscall : '';
  const file = typeof e.path === 'string' ? targetOfTemp(e.path) : undefined;
  const action = ACTIONS[syscall] ?? (syscall ? `${syscall} failed on` : 'cannot use');
  return new UserError(file
    ? `${action} ${file}: ${FS_ERROR_CAUSES[code]} (${code})`
    : `${syscall ? `${syscall} failed` : 'file-system error'}: ${FS_ERROR_CAUSES[code]} (${code})`);
}
