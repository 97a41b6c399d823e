// A command's --out folder. The rule for every command: an existing folder is written into and never removed; the
// command's own files are replaced one by one, atomically (temporary name in the same folder + rename); files it
// does not own are never touched. A folder whose files would clash with another tool's (say `model.json` in the
// folder `gapcam svm` writes to) is refused, and so is a folder holding training state (a resumable checkpoint).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { writeFilesAtomic } from './atomic.js';

/** What a command writes into its --out folder. */
export interface OutputOwner {
  /** The command as the user types it, e.g. 'gapcam svm'. */
  command: string;
  /** The file whose presence marks a previous result of this command (written last). */
  marker: string;
  /** True when the marker's text shows this command wrote it (default: any marker counts). */
  ownsMarker?: (text: string) => boolean;
  /** Other file names the command writes (fixed names; a clash with a file it did not write is refused). */
  files: readonly string[];
  /** A rerun over a previous result: replace its files atomically, or refuse unless --force. */
  rerun: 'replace' | 'refuse';
}

/** Files whose presence means the folder is a training checkpoint that can still be resumed. */
export const TRAINING_STATE_FILES = ['optimizer.bin', 'train-state.json'] as const;

/** Largest marker file read to tell whose it is. */
const MARKER_READ_LIMIT = 1 << 20;

/** Reads at most `limit` bytes of `file` (a marker, a manifest): a symlink to /dev/zero or a huge file is cut. */
function readHead(file: string, limit: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(limit);
    const n = fs.readSync(fd, buf, 0, limit, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

export interface PreparedOutFolder {
  dir: string;
  /** True when the folder held a previous result of the same command. */
  rerun: boolean;
}

/**
 * Checks and creates `--out` for `owner`: a UserError (one line) when it names a regular file, holds training state,
 * holds a file the command would overwrite without having written it, or holds a previous result that the command
 * replaces only with --force. Creates the folder (and its parents) when missing; never removes anything.
 */
export function prepareOutFolder(dir: string, owner: OutputOwner, opts: { force?: boolean; flag?: string } = {}): PreparedOutFolder {
  const flag = opts.flag ?? '--out';
  const abs = path.resolve(dir);
  const stat = fs.statSync(abs, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) throw new UserError(`${flag} ${dir}: is a file; expected a folder for ${owner.command}'s output (name a new or existing folder)`);
  fs.mkdirSync(abs, { recursive: true });
  const state = TRAINING_STATE_FILES.filter((f) => fs.existsSync(path.join(abs, f)));
  if (state.length) {
    throw new UserError(`${flag} ${dir}: is a training checkpoint (holds ${state.join(', ')}); writing ${owner.command}'s output there would break --resume, choose another folder`);
  }
  const markerFile = path.join(abs, owner.marker);
  let rerun = false;
  if (fs.existsSync(markerFile)) {
    let text = '';
    try {
      text = readHead(markerFile, MARKER_READ_LIMIT);
    } catch {
      text = '';
    }
    const ours = owner.ownsMarker ? owner.ownsMarker(text) : true;
    if (!ours) throw new UserError(`${flag} ${dir}: holds a ${owner.marker} that ${owner.command} did not write; choose another folder`);
    rerun = true;
    if (owner.rerun === 'refuse' && !opts.force) {
      throw new UserError(`${flag} ${dir}: already holds a result of ${owner.command} (${owner.marker}); pass --force to replace its files, or choose another folder`);
    }
  } else {
    const clash = owner.files.filter((f) => fs.existsSync(path.join(abs, f)));
    if (clash.length) throw new UserError(`${flag} ${dir}: holds ${clash.join(', ')}, which ${owner.command} did not write (no ${owner.marker} there); choose another folder`);
  }
  return { dir: abs, rerun };
}

/** True when `text` is a JSON object whose `key` equals `value` (a marker's signature). */
export function jsonHas(key: string, value: unknown): (text: string) => boolean {
  return (text) => {
    try {
      const j = JSON.parse(text) as Record<string, unknown>;
      return j !== null && typeof j === 'object' && j[key] === value;
    } catch {
      return false;
    }
  };
}

/** Writes `files` (name → content) into `dir` with writeFilesAtomic (all staged first, then renamed in the given
 *  order: put the marker last); then
 *  removes the owner's files this run did not write (e.g. predictions.csv of a previous run with a test set), but
 *  only when the folder held a previous result of the same command. */
export async function writeOwnFiles(prepared: PreparedOutFolder, owner: OutputOwner, files: [string, string | Uint8Array][]): Promise<void> {
  await writeFilesAtomic(prepared.dir, files);
  if (!prepared.rerun) return;
  const written = new Set(files.map(([n]) => n));
  for (const f of owner.files) if (!written.has(f) && f !== owner.marker) await fs.promises.rm(path.join(prepared.dir, f), { force: true });
}
