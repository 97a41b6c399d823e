// A relative path from a file the user gave (a model.json weight path, a CUB images.txt line) resolved inside the
// folder it belongs to: absolute paths, URLs and `..` escapes are refused, so a manifest cannot make gapcam read (or
// a model make a browser fetch) files elsewhere on the machine.
import fs from 'node:fs';
import path from 'node:path';

export type InsideResult = { path: string } | { problem: string };

/** Resolves `relative` inside `root`; `problem` says why it is refused. With `noLinksOut`, a symlink leading outside
 *  `root` is refused too (model folders; a dataset's image folder may well be a link to another disk). */
export function resolveInside(root: string, relative: string, opts: { noLinksOut?: boolean } = {}): InsideResult {
  if (relative.length === 0) return { problem: 'is empty' };
  if (/^[a-z][a-z0-9+.-]*:/i.test(relative) || path.isAbsolute(relative) || path.win32.isAbsolute(relative) || relative.startsWith('\\')) {
    return { problem: 'is absolute' };
  }
  const base = path.resolve(root);
  const full = path.resolve(base, relative);
  const rel = path.relative(base, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return { problem: 'points outside' };
  if (opts.noLinksOut && fs.existsSync(full)) {
    const realRel = path.relative(fs.realpathSync(base), fs.realpathSync(full));
    if (realRel.startsWith('..') || path.isAbsolute(realRel)) return { problem: 'is a link to a file outside' };
  }
  return { path: full };
}
