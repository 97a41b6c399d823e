// Two roots. The package root holds what gapcam ships (recipes/, scripts/, the from-source engine in .engine/); when
// gapcam is a dependency it is node_modules/gapcam, which is nobody's place to write. The work root holds what gapcam
// makes and reads by default (datasets/, checkpoints/, checkpoints/pretrained/, .cache/): GAPCAM_HOME, else the
// working directory — the project root when this repository's own `npm start` / `npm test` run, as before.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

/** The package root (the folder holding gapcam's package.json), found from this file from src/ or dist/src/. */
export const projectRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('gapcam: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
})();

/** The shipped recipes. */
export const recipesDir = path.join(projectRoot, 'recipes');

/** Where default folders are made and looked for: GAPCAM_HOME, else the working directory (read at each call). */
export function workRoot(): string {
  return path.resolve(process.env.GAPCAM_HOME || process.cwd());
}

/** datasets/ under the work root (GAPCAM_DATA_ROOT and --data-root override it where they are read). */
export function defaultDataRoot(): string {
  return path.join(workRoot(), 'datasets');
}

/** checkpoints/ under the work root: training runs, evaluations, features, pretrained weights. */
export function defaultCheckpointRoot(): string {
  return path.join(workRoot(), 'checkpoints');
}

/** .cache/ under the work root (image sizes, decoded images), unless GAPCAM_CACHE_DIR is set. */
export function defaultCacheRoot(): string {
  return process.env.GAPCAM_CACHE_DIR || path.join(workRoot(), '.cache');
}
