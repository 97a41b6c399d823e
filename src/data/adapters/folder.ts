// Image folders: root/<class>/*.{jpg,png,…}, or root/train/<class>/* + root/test/<class>/* (optionally val/), as
// Caltech-101/256, Scene-15, MIT Indoor-67, UIUC Event-8 and Stanford Action-40 unpack. Class names are the
// sub-folder names (sorted naturally; the union over splits). Images in nested folders below a class folder belong to
// that class. Without split folders, each class gets a fixed seeded split. No boxes; sizes from image headers.
import fs from 'node:fs';
import path from 'node:path';
import type { Dataset, ImageRecord, Split } from '../types.js';
import { type LayoutAdapter, type LayoutOptions } from './types.js';
import { BadInput, isImageFile, naturalCompare } from '../util.js';
import { fillSizes } from '../sizes.js';
import { assignSeededSplit, seededSplitOf } from '../split.js';
import { UserError } from '../../errors.js';

const SPLIT_DIRS: Record<string, Split> = { train: 'train', test: 'test', val: 'val', valid: 'val', validation: 'val' };

function subdirs(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name).sort(naturalCompare);
}

function imagesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...imagesUnder(p));
    else if (isImageFile(e.name)) out.push(p);
  }
  return out.sort(naturalCompare);
}

function splitRoots(root: string): [Split, string][] {
  const rank: Record<Split, number> = { train: 0, val: 1, test: 2 };
  return subdirs(root)
    .filter((d) => d.toLowerCase() in SPLIT_DIRS)
    .map((d): [Split, string] => [SPLIT_DIRS[d.toLowerCase()], path.join(root, d)])
    .sort((a, b) => rank[a[0]] - rank[b[0]]);
}

export async function loadImageFolder(root: string, options: LayoutOptions = {}): Promise<Dataset> {
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new UserError(`image folder not found: ${root}`);
  const bad = new BadInput(!!options.skipBadImages);
  const splits = splitRoots(root);
  const hasSplits = splits.length > 0;
  const parts: [Split, string][] = hasSplits ? splits : [['train', root]];
  const classNames = [...new Set(parts.flatMap(([, dir]) => subdirs(dir)))].sort(naturalCompare);
  if (classNames.length === 0) throw new UserError(`no class folders in ${root} (expected ${root}/<class>/*.jpg or ${root}/train/<class>/*.jpg)`);
  const records: ImageRecord[] = [];
  for (const [split, dir] of parts) {
    for (const cls of subdirs(dir)) {
      for (const file of imagesUnder(path.join(dir, cls))) {
        const rel = path.relative(root, file).split(path.sep).join('/');
        records.push({ id: rel, path: file, label: classNames.indexOf(cls), width: 0, height: 0, boxes: [], split });
      }
    }
  }
  if (records.length === 0) throw new UserError(`no images in ${root} (looked for ${root}/<class>/*.{jpg,png,webp,…})`);
  let kept = await fillSizes(records, bad, (r) => `image folder ${root}`, 16, root);
  if (!hasSplits) kept = assignSeededSplit(kept, classNames, ...seededSplitOf(options));
  return { name: options.name ?? path.basename(path.resolve(root)), root, classNames, records: kept, ...(bad.skip ? { skipped: bad.skipped } : {}) };
}

export const folderAdapter: LayoutAdapter = {
  describe: 'image folders: root/<class>/*.jpg, optionally under root/train/ and root/test/',
  detect: (root) => {
    if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) return false;
    const parts = splitRoots(root);
    const dirs = parts.length ? parts.map(([, d]) => d) : [root];
    return dirs.some((d) => subdirs(d).some((c) => fs.readdirSync(path.join(d, c)).some(isImageFile)));
  },
  load: loadImageFolder,
};
