// A feature folder: features.npy (float32 N×D, numpy.load-able), index.csv (one line per row: row, image id, path,
// class id, class name, split) and features.json (settings, cache key, class names, timing). Written into the
// --out folder file by file, each atomically, features.json last (src/util/out-folder.ts); read back with every
// cross-check a user mistake could break.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { readNpy, encodeNpy } from '../util/npy.js';
import { resolveAtomicDir, writeFilesAtomic } from '../util/atomic.js';
import { jsonHas, prepareOutFolder, type OutputOwner } from '../util/out-folder.js';
import { UserError } from '../errors.js';
import { csvField } from '../util/csv.js';

export const FEATURES_FILE = 'features.npy';
export const INDEX_FILE = 'index.csv';
export const META_FILE = 'features.json';
export const CROPS_FILE = 'crops.csv';

/** The files `gapcam features` owns in a feature folder. A rerun with the same cache key reuses them; with other
 *  settings it replaces them, or refuses without --force where the caller says so (an explicit --out). */
export const FEATURES_OUTPUT: OutputOwner = {
  command: 'gapcam features',
  marker: META_FILE,
  ownsMarker: jsonHas('format', 'gapcam-features'),
  files: [FEATURES_FILE, INDEX_FILE, CROPS_FILE],
  rerun: 'replace',
};
export const INDEX_COLUMNS = ['row', 'image_id', 'path', 'class_id', 'class_name', 'split'] as const;

export interface FeatureIndexRow {
  row: number;
  imageId: string;
  path: string;
  classId: number;
  className: string;
  split: string;
}

/** What the features were made from; its hash is the cache key. */
export interface FeatureSource {
  /** Where the model was read from (folder, URL or backbone name). */
  checkpoint: string;
  /** Identity of the model files: a hash of their names, sizes and modification times. */
  checkpointId: string;
  dataset: string;
  datasetRoot?: string;
  /** Hash of the dataset's records (ids, paths, labels, boxes) that were extracted. */
  datasetId?: string;
  split: string;
  /** The --layer asked for ('gap' or a layer name) and the layer actually read. */
  layer: string;
  featureLayer?: string;
  pooling: 'identity' | 'global-average';
  crop: string;
  /** Crop 'cam': the fraction of the CAM maximum kept by the box rule. */
  camThreshold?: number;
  inputSize: [number, number];
  preprocessing?: string;
  /** Images that fail to decode were left out (listed in extra.skippedImages). */
  skipBadImages?: boolean;
}

export interface FeaturesMeta {
  format: 'gapcam-features';
  version: 1;
  cacheKey: string;
  source: FeatureSource;
  count: number;
  dimension: number;
  classNames: string[];
  createdAt: string;
  seconds?: number;
  imagesPerSecond?: number;
  /** Anything else the writer wants to keep (e.g. crop boxes statistics). */
  extra?: Record<string, unknown>;
}

export interface FeatureSet {
  dir: string;
  data: Float32Array;
  count: number;
  dimension: number;
  rows: FeatureIndexRow[];
  meta: FeaturesMeta;
}


export function encodeIndexCsv(rows: FeatureIndexRow[]): string {
  const lines = [INDEX_COLUMNS.join(',')];
  for (const r of rows) lines.push([r.row, r.imageId, r.path, r.classId, r.className, r.split].map(csvField).join(','));
  return lines.join('\n') + '\n';
}

export interface FeatureFiles {
  data: Float32Array;
  rows: FeatureIndexRow[];
  meta: FeaturesMeta;
  extraFiles?: Partial<Record<typeof CROPS_FILE, string>>;
}

/** Writes the files of a feature set into `dir`, each atomically, features.json last; returns their names. Touches no
 *  other file of `dir` (a merge writes beside the parts). */
export async function writeFeatureFiles(dir: string, set: FeatureFiles): Promise<string[]> {
  const { data, rows, meta } = set;
  if (data.length !== meta.count * meta.dimension || rows.length !== meta.count) {
    throw new Error(`writeFeatureSet: ${rows.length} index rows and ${data.length} values for ${meta.count}×${meta.dimension}`);
  }
  const files: [string, string | Uint8Array][] = [
    [FEATURES_FILE, encodeNpy(data, [meta.count, meta.dimension])],
    [INDEX_FILE, encodeIndexCsv(rows)],
    ...Object.entries(set.extraFiles ?? {}),
    [META_FILE, JSON.stringify(meta, null, 2) + '\n'],
  ];
  await writeFilesAtomic(dir, files);
  return files.map(([name]) => name);
}

/** Writes a feature set into the --out folder `dir` (see FEATURES_OUTPUT): each file atomically, nothing else there
 *  touched; a crops.csv of a previous run that this one does not write is removed. */
export async function writeFeatureSet(dir: string, set: FeatureFiles): Promise<void> {
  const prepared = prepareOutFolder(dir, FEATURES_OUTPUT);
  const written = await writeFeatureFiles(prepared.dir, set);
  if (prepared.rerun && !written.includes(CROPS_FILE)) await fs.promises.rm(path.join(prepared.dir, CROPS_FILE), { force: true });
}

/** Accepts a feature folder or the path of its features.npy. */
export function resolveFeatureDir(given: string): string {
  const p = path.resolve(given);
  const dir = p.endsWith('.npy') ? path.dirname(p) : p;
  const found = resolveAtomicDir(dir);
  if (!found || !fs.existsSync(path.join(found, FEATURES_FILE))) {
    throw new UserError(`${given}: not a feature folder (expected ${FEATURES_FILE}, ${INDEX_FILE} and ${META_FILE} written by 'gapcam features')`);
  }
  return found;
}

export function readFeatureMeta(dir: string): FeaturesMeta | undefined {
  const file = path.join(dir, META_FILE);
  if (!fs.existsSync(file)) return undefined;
  try {
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as FeaturesMeta;
    return meta.format === 'gapcam-features' ? meta : undefined;
  } catch {
    return undefined;
  }
}

export function readFeatureSet(given: string): FeatureSet {
  const dir = resolveFeatureDir(given);
  const { data, shape } = readNpy(path.join(dir, FEATURES_FILE));
  if (shape.length !== 2) throw new UserError(`${path.join(dir, FEATURES_FILE)}: expected a 2-D N×D array, found shape (${shape.join(', ')})`);
  const [count, dimension] = shape;
  const indexFile = path.join(dir, INDEX_FILE);
  if (!fs.existsSync(indexFile)) throw new UserError(`${dir}: ${INDEX_FILE} is missing beside ${FEATURES_FILE}`);
  let records: Record<string, string>[];
  try {
    records = parse(fs.readFileSync(indexFile, 'utf8'), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  } catch (err) {
    throw new UserError(`${indexFile}: not a valid CSV (${(err as Error).message.split('\n')[0]})`);
  }
  if (records.length && INDEX_COLUMNS.some((c) => !(c in records[0]))) {
    throw new UserError(`${indexFile}: expected columns ${INDEX_COLUMNS.join(',')}, found ${Object.keys(records[0]).join(',')}`);
  }
  if (records.length !== count) throw new UserError(`${indexFile}: ${records.length} rows, but ${FEATURES_FILE} has ${count}`);
  const rows: FeatureIndexRow[] = records.map((r, i) => {
    const classId = Number(r.class_id);
    if (!Number.isInteger(classId) || classId < 0) throw new UserError(`${indexFile}:${i + 2}: class_id must be a non-negative integer, found '${r.class_id}'`);
    return { row: Number(r.row), imageId: r.image_id, path: r.path, classId, className: r.class_name, split: r.split };
  });
  let meta = readFeatureMeta(dir);
  if (!meta) {
    // A folder made by another tool: infer the class list from the index.
    const names: string[] = [];
    for (const r of rows) names[r.classId] = r.className;
    meta = {
      format: 'gapcam-features',
      version: 1,
      cacheKey: '',
      source: { checkpoint: '', checkpointId: '', dataset: '', split: '', layer: '', pooling: 'identity', crop: 'full', inputSize: [0, 0] },
      count,
      dimension,
      classNames: Array.from(names, (n, k) => n ?? `class${k}`),
      createdAt: '',
    };
  }
  if (meta.count !== count || meta.dimension !== dimension) {
    throw new UserError(`${path.join(dir, META_FILE)}: says ${meta.count}×${meta.dimension}, but ${FEATURES_FILE} is ${count}×${dimension}`);
  }
  return { dir, data, count, dimension, rows, meta };
}

/** Rows `indices` of a feature set, as a new set (for random train/test protocols). */
export function subsetFeatures(set: FeatureSet, indices: ArrayLike<number>): FeatureSet {
  const d = set.dimension;
  const data = new Float32Array(indices.length * d);
  const rows: FeatureIndexRow[] = [];
  for (let r = 0; r < indices.length; r++) {
    const i = indices[r];
    data.set(set.data.subarray(i * d, (i + 1) * d), r * d);
    rows.push(set.rows[i]);
  }
  return { ...set, data, count: indices.length, rows, meta: { ...set.meta, count: indices.length } };
}
