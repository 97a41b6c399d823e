import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

/** The project root (the folder holding package.json), found from this file whether run from src/ or dist/src/. */
export const projectRoot: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('gapcam: cannot find package.json above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
})();

export const defaultDataRoot = path.join(projectRoot, 'datasets');
export const defaultCheckpointRoot = path.join(projectRoot, 'checkpoints');
export const recipesDir = path.join(projectRoot, 'recipes');
