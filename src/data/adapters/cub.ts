// CUB-200-2011, exactly as CUB_200_2011.tgz unpacks:
//   images.txt              <image_id> <relative path under images/>
//   image_class_labels.txt  <image_id> <class_id>          (class ids 1-based, as in classes.txt)
//   train_test_split.txt    <image_id> <is_training_image> (1 = train, 0 = test)
//   bounding_boxes.txt      <image_id> <x> <y> <width> <height>   (pixels, floats)
//   classes.txt             <class_id> <class_name>
// Box conversion: CUB gives the top-left pixel (x, y) and the extent (width, height) in pixels, 0-based. gapcam
// boxes are inclusive corners, so the box covering `width` columns starting at column x is
//   x0 = x, y0 = y, x1 = x + width − 1, y1 = y + height − 1
// (floats kept as given; boxes overhanging the image by ≤ 1 px are clamped to it, farther out is an error).
// gapcam extension: an optional image_sizes.txt (<image_id> <width> <height>) saves reading image headers; without
// it the sizes come from the image headers (sharp metadata, no pixel decoding).
import fs from 'node:fs';
import path from 'node:path';
import type { Box, Dataset, ImageRecord } from '../types.js';
import type { LayoutAdapter, LayoutOptions } from './types.js';
import { BadInput, checkBox, parseNumberField, readSpaceTable } from '../util.js';
import { fillSizes } from '../sizes.js';
import { UserError } from '../../errors.js';
import { resolveInside } from '../../util/inside.js';

export const CUB_FILES = ['images.txt', 'image_class_labels.txt', 'train_test_split.txt', 'classes.txt'] as const;

/** Converts a CUB box (x, y, width, height) to gapcam's inclusive [x0, y0, x1, y1]. */
export function cubBoxToBox(x: number, y: number, w: number, h: number): Box {
  return [x, y, x + w - 1, y + h - 1];
}

/** The inverse of cubBoxToBox (used when writing the CUB layout). */
export function boxToCubBox(box: Box): [number, number, number, number] {
  return [box[0], box[1], box[2] - box[0] + 1, box[3] - box[1] + 1];
}

export async function loadCub(root: string, options: LayoutOptions = {}): Promise<Dataset> {
  for (const f of CUB_FILES) {
    if (!fs.existsSync(path.join(root, f))) throw new UserError(`not a CUB-200-2011 folder: ${path.join(root, f)} is missing (expected ${CUB_FILES.join(', ')} and images/)`);
  }
  const file = (f: string) => path.join(root, f);
  const bad = new BadInput(!!options.skipBadImages);

  const classRows = readSpaceTable(file('classes.txt'), 'CUB classes file', 2, true);
  const classIndex = new Map<string, number>();
  const classNames: string[] = [];
  for (const { line, fields } of classRows) {
    if (classIndex.has(fields[0])) throw new UserError(`${file('classes.txt')} line ${line}: class id ${fields[0]} appears twice`);
    classIndex.set(fields[0], classNames.length);
    classNames.push(fields[1]);
  }
  if (classNames.length === 0) throw new UserError(`${file('classes.txt')}: no classes listed`);

  const labels = new Map<string, number>();
  for (const { line, fields } of readSpaceTable(file('image_class_labels.txt'), 'CUB labels file', 2)) {
    const idx = classIndex.get(fields[1]);
    if (idx === undefined) {
      throw new UserError(`${file('image_class_labels.txt')} line ${line}: class id ${fields[1]} of image ${fields[0]} is out of range (classes.txt lists ${classNames.length} classes)`);
    }
    labels.set(fields[0], idx);
  }
  const isTrain = new Map<string, boolean>();
  for (const { line, fields } of readSpaceTable(file('train_test_split.txt'), 'CUB split file', 2)) {
    if (fields[1] !== '0' && fields[1] !== '1') throw new UserError(`${file('train_test_split.txt')} line ${line}: is_training_image must be 0 or 1, found '${fields[1]}'`);
    isTrain.set(fields[0], fields[1] === '1');
  }
  const boxes = new Map<string, { box: Box; line: number }[]>();
  if (fs.existsSync(file('bounding_boxes.txt'))) {
    for (const { line, fields } of readSpaceTable(file('bounding_boxes.txt'), 'CUB boxes file', 5)) {
      const [x, y, w, h] = fields.slice(1, 5).map((v, i) => parseNumberField(v, file('bounding_boxes.txt'), line, ['x', 'y', 'width', 'height'][i]));
      const list = boxes.get(fields[0]) ?? [];
      list.push({ box: cubBoxToBox(x, y, w, h), line });
      boxes.set(fields[0], list);
    }
  }
  const sizes = new Map<string, [number, number]>();
  if (fs.existsSync(file('image_sizes.txt'))) {
    for (const { line, fields } of readSpaceTable(file('image_sizes.txt'), 'CUB sizes file', 3)) {
      sizes.set(fields[0], [parseNumberField(fields[1], file('image_sizes.txt'), line, 'width'), parseNumberField(fields[2], file('image_sizes.txt'), line, 'height')]);
    }
  }

  const lineOf = new Map<ImageRecord, number>();
  const records: ImageRecord[] = [];
  const seen = new Set<string>();
  for (const { line, fields } of readSpaceTable(file('images.txt'), 'CUB image list', 2, true)) {
    const [id, rel] = fields;
    if (seen.has(id)) throw new UserError(`${file('images.txt')} line ${line}: image id ${id} appears twice`);
    seen.add(id);
    const label = labels.get(id);
    if (label === undefined) throw new UserError(`${file('image_class_labels.txt')}: no class for image ${id} (${file('images.txt')} line ${line})`);
    const train = isTrain.get(id);
    if (train === undefined) throw new UserError(`${file('train_test_split.txt')}: no train/test entry for image ${id} (${file('images.txt')} line ${line})`);
    const inside = resolveInside(path.join(root, 'images'), rel);
    if ('problem' in inside) {
      throw new UserError(`${file('images.txt')} line ${line}: image path '${rel}' ${inside.problem}${inside.problem === 'points outside' ? ' the images folder' : ''}; expected a path relative to ${path.join(root, 'images')}`);
    }
    const [width, height] = sizes.get(id) ?? [0, 0];
    const rec: ImageRecord = { id, path: inside.path, label, width, height, boxes: [], split: train ? 'train' : 'test' };
    lineOf.set(rec, line);
    records.push(rec);
  }
  const present = await fillSizes(records, bad, (r) => `${file('images.txt')} line ${lineOf.get(r)}`, 16, root);
  const kept: ImageRecord[] = [];
  for (const rec of present) {
    let ok = true;
    for (const { box, line } of boxes.get(rec.id) ?? []) {
      const checked = checkBox(box, rec.width, rec.height);
      if (typeof checked === 'string') {
        bad.bad(rec.path, `${file('bounding_boxes.txt')} line ${line}: image ${rec.id}: ${checked}`);
        ok = false;
        break;
      }
      rec.boxes.push(checked);
    }
    if (ok) kept.push(rec);
  }
  return { name: options.name ?? path.basename(root), root, classNames, records: kept, ...(bad.skip ? { skipped: bad.skipped } : {}) };
}

export const cubAdapter: LayoutAdapter = {
  describe: 'CUB-200-2011 layout (images.txt, image_class_labels.txt, train_test_split.txt, bounding_boxes.txt, classes.txt, images/)',
  detect: (root) => CUB_FILES.every((f) => fs.existsSync(path.join(root, f))),
  load: loadCub,
};
