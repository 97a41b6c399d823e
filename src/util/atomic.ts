// Nothing already written is lost: files and folders are written under a temporary name and renamed into place
// (rename is atomic within one filesystem), so a crash leaves either the old or the new version, never half.
import fs from 'node:fs';
import path from 'node:path';
import { crashPoint } from './crash-points.js';

/** `.name.tmp-<pid>-<time>` beside `target` (same folder, so the final rename stays on one filesystem; training's
 *  clean-up of killed saves matches this form). */
export function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
}

/** The file a temporary name stands for (`dir/.x.tmp-1-2-3` → `dir/x`); other paths as given. Error messages name
 *  the user's file, not our temporary one. */
export function targetOfTemp(file: string): string {
  const m = /^\.(.+)\.tmp-\d+-\d+$/.exec(path.basename(file));
  return m ? path.join(path.dirname(file), m[1]) : file;
}

/** Gives an fs error the file it concerns when the system call recorded none (Node's write() errors carry no path),
 *  so util/fs-errors.ts can name it. */
export function withPath(err: unknown, file: string): unknown {
  const e = err as { code?: unknown; path?: unknown } | null;
  if (e && typeof e === 'object' && typeof e.code === 'string' && e.path === undefined) e.path = file;
  return err;
}

/** Whether a file name is one of this module's temporary names (`.<name>.tmp-<pid>-<ms>`), so leftovers of a killed
 *  write can be told apart from the user's files. */
export function isTempName(name: string): boolean {
  return /^\..*\.tmp-\d+-\d+$/.test(name);
}

/** Writes `data` to a temporary file beside `target` and renames it into place; on any failure (a full disk, no
 *  permission) the temporary file is removed and `target` keeps its previous content. The folder is made first
 *  unless the caller knows it exists (`parentExists`). */
export async function writeFileAtomic(target: string, data: string | Uint8Array, o: { parentExists?: boolean } = {}): Promise<void> {
  if (!o.parentExists) await fs.promises.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    await fs.promises.writeFile(tmp, data);
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw withPath(err, tmp);
  }
}

/** Writes several files of `dir` as one step as far as a file system allows: every file goes to its temporary name
 *  first (where a full disk or a permission error strikes; then all temporaries are removed and every previous file
 *  is intact), then each is renamed into place, in the given order (put a marker file last), `afterRename` called
 *  with each name once it is in place. */
export async function writeFilesAtomic(dir: string, files: readonly (readonly [string, string | Uint8Array])[],
  afterRename?: (name: string) => void): Promise<void> {
  await fs.promises.mkdir(dir, { recursive: true });
  const staged: [string, string][] = [];
  try {
    for (const [name, data] of files) {
      const target = path.join(dir, name);
      const tmp = tempName(target);
      staged.push([tmp, target]);
      await fs.promises.writeFile(tmp, data).catch((err) => { throw withPath(err, tmp); });
    }
    for (const [i, [tmp, target]] of staged.entries()) {
      await fs.promises.rename(tmp, target).catch((err) => { throw withPath(err, tmp); });
      afterRename?.(files[i][0]);
    }
  } catch (err) {
    await Promise.all(staged.map(([tmp]) => fs.promises.rm(tmp, { force: true }).catch(() => undefined)));
    throw err;
  }
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, target);
  } catch (err) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* the original error matters */ }
    throw withPath(err, tmp);
  }
}

/** Fills a fresh temporary folder with `fill`, then swaps it in for `target`. Only for folders the caller owns
 *  entirely (training checkpoints `last/`, `best/`): a user's `--out` folder is written with ./out-folder.ts, which
 *  never removes a folder.  The previous folder is moved aside
 *  first and removed only after the new one is in place, so at every moment one complete version exists
 *  (`target` or `target.old`). */
export async function writeDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  await fs.promises.mkdir(tmp, { recursive: true });
  const point = `dir:${path.basename(target)}`;
  try {
    await fill(tmp);
  } catch (err) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  crashPoint(`${point}:filled`);
  const old = `${target}.old`;
  if (fs.existsSync(target)) {
    await fs.promises.rm(old, { recursive: true, force: true }); // a leftover: target is complete
    await fs.promises.rename(target, old);
    crashPoint(`${point}:moved-aside`);
  } // else `old` may be the only complete copy (a previous swap was cut short): it goes only once tmp is in place
  await fs.promises.rename(tmp, target);
  crashPoint(`${point}:swapped`);
  await fs.promises.rm(old, { recursive: true, force: true });
}

/** Reads a folder written by writeDirAtomic, recovering `target.old` if a crash hit between the two renames. */
export function resolveAtomicDir(target: string): string | undefined {
  if (fs.existsSync(target)) return target;
  if (fs.existsSync(`${target}.old`)) return `${target}.old`;
  return undefined;
}
