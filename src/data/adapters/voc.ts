// Pascal VOC style folders: <folder>/images/*.jpg + <folder>/annotations/*.xml (also JPEGImages/ + Annotations/).
// Each XML gives <filename>, <size><width><height>, and one or more <object><name> <bndbox>xmin ymin xmax ymax.
// Several folders combine into one multi-class dataset; the class is the folder's name or each XML's first <name>.
// Box conversion: VOC coordinates are 1-based pixel indices with inclusive corners (the devkit convention; labelImg
// writes xmin ≥ 1 and xmax ≤ width), so gapcam's 0-based inclusive box is [xmin − 1, ymin − 1, xmax − 1, ymax − 1].
// Sizes come from <size> (no image is opened); when <size> is missing or zero they come from the image header.
// A folder with ImageSets/Main/{train,trainval,val,test}.txt (the official VOC layout) takes its split from those
// lists (test.txt → test; val.txt → test when there is no test.txt, else val; train/trainval → train; images in
// no list are left out). A folder without them gets a fixed seeded per-class split (see split.ts).
import fs from 'node:fs';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type { Box, Dataset, ImageRecord, Split } from '../types.js';
import { type LayoutAdapter, type LayoutOptions } from './types.js';
import { BadInput, checkBox, isImageFile, naturalCompare } from '../util.js';
import { fillSizes } from '../sizes.js';
import { assignSeededSplit, seededSplitOf } from '../split.js';
import { UserError } from '../../errors.js';
import { READ_LIMITS, readTextBounded } from '../../util/bounded-read.js';

const IMAGE_DIRS = ['images', 'JPEGImages'];
const ANNOTATION_DIRS = ['annotations', 'Annotations'];

function findDir(folder: string, names: string[]): string | undefined {
  for (const n of names) {
    const p = path.join(folder, n);
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) return p;
  }
  return undefined;
}

export function isVocFolder(folder: string): boolean {
  return !!findDir(folder, IMAGE_DIRS) && !!findDir(folder, ANNOTATION_DIRS);
}

/** One parsed VOC annotation. */
export interface VocAnnotation {
  filename?: string;
  width: number;
  height: number;
  objects: { name: string; box: Box }[];
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, isArray: (name) => name === 'object' });

function num(v: unknown): number {
  return typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN;
}

/** Parses one VOC XML file; an XML that does not parse or lacks a field is a one-line UserError naming the file. */
export function parseVocXml(file: string, text: string): VocAnnotation {
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new UserError(`${file} line ${valid.err.line}: VOC annotation is not valid XML (${valid.err.msg})`);
  }
  const doc = parser.parse(text) as { annotation?: Record<string, unknown> };
  const ann = doc.annotation;
  if (!ann || typeof ann !== 'object') throw new UserError(`${file}: expected a VOC <annotation> element, found none`);
  const size = (ann.size ?? {}) as Record<string, unknown>;
  const objects: VocAnnotation['objects'] = [];
  for (const [i, o] of ((ann.object ?? []) as Record<string, unknown>[]).entries()) {
    const name = typeof o.name === 'string' ? o.name.trim() : '';
    const bb = (o.bndbox ?? undefined) as Record<string, unknown> | undefined;
    if (!name) throw new UserError(`${file}: <object> ${i + 1} has no <name>`);
    if (!bb) throw new UserError(`${file}: <object> ${i + 1} (${name}) has no <bndbox>`);
    const c = [num(bb.xmin), num(bb.ymin), num(bb.xmax), num(bb.ymax)];
    if (!c.every(Number.isFinite)) throw new UserError(`${file}: <object> ${i + 1} (${name}) <bndbox> needs numeric xmin ymin xmax ymax, found ${JSON.stringify(bb)}`);
    objects.push({ name, box: [c[0] - 1, c[1] - 1, c[2] - 1, c[3] - 1] });
  }
  const width = num(size.width), height = num(size.height);
  return {
    filename: typeof ann.filename === 'string' ? ann.filename.trim() : undefined,
    width: Number.isFinite(width) && width > 0 ? width : 0,
    height: Number.isFinite(height) && height > 0 ? height : 0,
    objects,
  };
}

/** The split lists of an official VOC folder (stem → split), or undefined when it has none. */
export function vocSplitLists(folder: string): Map<string, Split> | undefined {
  const dir = path.join(folder, 'ImageSets', 'Main');
  const read = (name: string): string[] | undefined => {
    const f = path.join(dir, `${name}.txt`);
    if (!fs.existsSync(f)) return undefined;
    return readTextBounded(f, 'VOC image set', READ_LIMITS.labels).split(/\r?\n/).map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
  };
  const train = [...(read('train') ?? []), ...(read('trainval') ?? [])];
  const val = read('val');
  const test = read('test');
  if (!train.length || (!val && !test)) return undefined;
  const out = new Map<string, Split>();
  for (const id of train) out.set(id, 'train');
  for (const id of val ?? []) out.set(id, test ? 'val' : 'test');
  for (const id of test ?? []) out.set(id, 'test');
  return out;
}

interface Pending {
  fixedSplit?: Split | 'none';
  rec: ImageRecord;
  xml: string;
  objects: VocAnnotation['objects'];
  className: string;
}

/** Loads one or more VOC folders as one dataset. */
export async function loadVocFolders(folders: string[], options: LayoutOptions = {}): Promise<Dataset> {
  if (folders.length === 0) throw new UserError('no VOC folders given');
  const classFrom = options.classFrom ?? (folders.length > 1 ? 'folder' : 'name');
  const bad = new BadInput(!!options.skipBadImages);
  const pending: Pending[] = [];
  for (const folder of folders) {
    const imgDir = findDir(folder, IMAGE_DIRS);
    const annDir = findDir(folder, ANNOTATION_DIRS);
    if (!imgDir || !annDir) throw new UserError(`not a VOC folder: ${folder} (expected images/ and annotations/ inside)`);
    const folderName = path.basename(path.resolve(folder));
    const lists = vocSplitLists(folder);
    const xmls = fs.readdirSync(annDir).filter((f) => f.toLowerCase().endsWith('.xml')).sort(naturalCompare);
    const imagesByStem = new Map<string, string>();
    for (const f of fs.readdirSync(imgDir)) if (isImageFile(f)) imagesByStem.set(path.parse(f).name, f);
    for (const x of xmls) {
      const xml = path.join(annDir, x);
      let ann: VocAnnotation;
      try {
        ann = parseVocXml(xml, readTextBounded(xml, 'VOC annotation', READ_LIMITS.annotation));
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        bad.bad(xml, err);
        continue;
      }
      const stem = path.parse(x).name;
      const fileName = ann.filename && fs.existsSync(path.join(imgDir, ann.filename)) ? ann.filename : imagesByStem.get(stem) ?? ann.filename ?? `${stem}.jpg`;
      const imagePath = path.join(imgDir, fileName);
      let className = folderName;
      if (classFrom === 'name') {
        if (ann.objects.length === 0) {
          bad.bad(xml, `${xml}: no <object>, so no class for ${imagePath} (class is taken from <name>)`);
          continue;
        }
        className = ann.objects[0].name;
      }
      const id = folders.length > 1 ? `${folderName}/${stem}` : stem;
      pending.push({ fixedSplit: lists ? lists.get(stem) ?? 'none' : undefined, rec: { id, path: imagePath, label: -1, width: ann.width, height: ann.height, boxes: [], split: 'train' }, xml, objects: ann.objects, className });
    }
  }
  const classNames = [...new Set(pending.map((p) => p.className))].sort(naturalCompare);
  const xmlOf = new Map(pending.map((p) => [p.rec, p]));
  const present = await fillSizes(pending.map((p) => p.rec), bad, (r) => `${xmlOf.get(r)!.xml}`, 16, folders[0]);
  let records: ImageRecord[] = [];
  for (const rec of present) {
    const p = xmlOf.get(rec)!;
    rec.label = classNames.indexOf(p.className);
    let ok = true;
    for (const o of p.objects) {
      if (classFrom === 'name' && o.name !== p.className) continue;
      const checked = checkBox(o.box, rec.width, rec.height);
      if (typeof checked === 'string') {
        bad.bad(rec.path, `${p.xml}: <object> ${o.name}: ${checked}`);
        ok = false;
        break;
      }
      rec.boxes.push(checked);
    }
    if (ok) records.push(rec);
  }
  const listed = records.filter((r) => xmlOf.get(r)!.fixedSplit !== undefined);
  for (const r of listed) r.split = xmlOf.get(r)!.fixedSplit as Split;
  const unlisted = assignSeededSplit(records.filter((r) => xmlOf.get(r)!.fixedSplit === undefined), classNames, ...seededSplitOf(options));
  const keep = new Set([...listed.filter((r) => xmlOf.get(r)!.fixedSplit !== 'none'), ...unlisted]);
  records = records.filter((r) => keep.has(r));
  const root = folders.length === 1 ? folders[0] : path.dirname(path.resolve(folders[0]));
  return { name: options.name ?? path.basename(path.resolve(folders.length === 1 ? folders[0] : root)), root, classNames, records, ...(bad.skip ? { skipped: bad.skipped } : {}) };
}

/** VOC folders under `root`: root itself when it is one, else its sub-folders that are (sorted). */
export function vocFoldersUnder(root: string): string[] {
  if (isVocFolder(root)) return [root];
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) return [];
  return fs.readdirSync(root).sort(naturalCompare).map((d) => path.join(root, d)).filter(isVocFolder);
}

export const vocAdapter: LayoutAdapter = {
  describe: 'Pascal VOC folder(s): images/*.jpg + annotations/*.xml, or a folder of such folders (one class each)',
  detect: (root) => vocFoldersUnder(root).length > 0,
  load: (root, options) => {
    const folders = [...vocFoldersUnder(root), ...(options.extraFolders ?? [])];
    if (folders.length === 0) throw new UserError(`no VOC folder at ${root} (expected images/ and annotations/ inside it or its sub-folders)`);
    return loadVocFolders(folders, options);
  },
};
