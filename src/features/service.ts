// `gapcam features`: load a model and a dataset, extract (or reuse) a feature folder.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Box, Dataset, ImageRecord, Split } from '../data/types.js';
import { loadDataset, resolveDataRoot } from '../data/datasets.js';
import { loadModelRef } from '../models/refs.js';
import { describePreprocessing } from '../data/preprocess-modes.js';
import { defaultCheckpointRoot } from '../paths.js';
import { UserError } from '../errors.js';
import {
  extractFeatures, modelInputSize, resolveFeatureLayer, DEFAULT_CAM_THRESHOLD, DEFAULT_LAYER,
  type CropMode, type ExtractOptions, type FeatureModel,
} from './extract.js';
import { CROPS_FILE, FEATURES_OUTPUT, readFeatureMeta, writeFeatureFiles, writeFeatureSet, type FeatureIndexRow, type FeatureSource, type FeaturesMeta } from './store.js';
import { resolveAtomicDir } from '../util/atomic.js';
import { slug } from '../util/names.js';
import { shardRange, type ShardSpec } from '../shard/spec.js';
import { partDir, readPart, writePart, type PartHeader } from '../shard/part.js';
import { datasetSelectionFingerprint, idsFingerprint, modelFingerprint, optionsFingerprint } from '../shard/fingerprint.js';
import { prepareOutFolder } from '../util/out-folder.js';

export const SPLIT_CHOICES = ['all', 'train', 'test', 'val'] as const;
export type SplitChoice = (typeof SPLIT_CHOICES)[number];

export interface LoadedFeatureModel {
  fm: FeatureModel;
  /** Folder (or URL / backbone name) the model came from. */
  source: string;
  checkpointId: string;
  /** A short name for output folders. */
  name: string;
}

function sha(text: string): string {
  return crypto.createHash('sha256').update(text).digest('hex');
}

/** Identity of a model folder without reading its weights: names, sizes and mtimes of its files. */
export function modelFolderIdentity(dir: string): string {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return sha(`ref:${dir}`).slice(0, 16);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json') || f.endsWith('.bin') || f === 'classes.txt').sort();
  const parts = files.map((f) => {
    const st = fs.statSync(path.join(dir, f));
    return `${f}:${st.size}:${Math.round(st.mtimeMs)}`;
  });
  return sha(`${path.resolve(dir)}\n${parts.join('\n')}`).slice(0, 16);
}

/** Loads a model named as for every gapcam command (folder, checkpoint run, run name, URL, backbone). */
export async function loadFeatureModel(ref: string, opts: { checkpointRoot?: string } = {}): Promise<LoadedFeatureModel> {
  const loaded = await loadModelRef(ref, { checkpointRoot: opts.checkpointRoot });
  const base = path.basename(loaded.source);
  const name = ['best', 'last'].includes(base) ? `${path.basename(path.dirname(loaded.source))}-${base}` : base;
  return {
    fm: { model: loaded.model, meta: loaded.meta },
    source: loaded.source,
    checkpointId: loaded.kind === 'backbone' || loaded.kind === 'url' ? sha(`${loaded.kind}:${loaded.source}`).slice(0, 16) : modelFolderIdentity(loaded.source),
    name: slug(name, 'model'),
  };
}

/** Hash of what is extracted from a dataset: each record's id, path, label and boxes. */
export function recordsIdentity(records: readonly ImageRecord[]): string {
  const h = crypto.createHash('sha256');
  for (const r of records) h.update(`${r.id}\t${r.path}\t${r.label}\t${JSON.stringify(r.boxes)}\n`);
  return h.digest('hex').slice(0, 16);
}

export function cacheKeyOf(source: FeatureSource): string {
  const { checkpoint: _where, datasetRoot: _root, ...identity } = source; // where things live does not change them
  return sha(JSON.stringify({ v: 1, ...identity })).slice(0, 24);
}

export function selectSplit(dataset: Dataset, split: SplitChoice): ImageRecord[] {
  if (split === 'all') return dataset.records;
  const out = dataset.records.filter((r) => r.split === split);
  if (!out.length) {
    const have = [...new Set(dataset.records.map((r) => r.split))].join(', ') || 'none';
    throw new UserError(`dataset '${dataset.name}' has no ${split} images (splits present: ${have}); use --split all`);
  }
  return out;
}

export interface FeatureJob {
  model: LoadedFeatureModel;
  dataset: Dataset;
  records: ImageRecord[];
  split: string;
  out: string;
  force?: boolean;
  /** When `out` holds features of other settings: replace them (a cache folder, the default) or refuse without
   *  `force` (a folder the user named with --out). */
  rerun?: 'replace' | 'refuse';
  extract?: ExtractOptions;
  /** Called once it is known whether the folder is reused. */
  onStart?: (reused: boolean, count: number) => void;
  /** Extract only this shard of `records` into its part folder under `out` (see src/shard/). */
  shard?: ShardSpec;
}

export interface FeatureJobResult {
  dir: string;
  meta: FeaturesMeta;
  reused: boolean;
}

function cropsCsv(records: ImageRecord[], regions: (Box | undefined)[], camClasses?: (number | undefined)[]): string {
  const lines = ['row,image_id,x0,y0,x1,y1' + (camClasses ? ',cam_class_id' : '')];
  records.forEach((r, i) => {
    const b = regions[i];
    const box = b ? b.map((v) => String(Math.round(v * 100) / 100)) : ['', '', '', ''];
    lines.push([i, JSON.stringify(r.id), ...box, ...(camClasses ? [camClasses[i] ?? ""] : [])].join(','));
  });
  return lines.join('\n') + '\n';
}

/** The feature source of a job, without extracting (to compare with a folder on disk). */
export function featureSourceOf(job: FeatureJob): FeatureSource {
  const ex = job.extract ?? {};
  const layer = resolveFeatureLayer(job.model.fm, ex.layer ?? DEFAULT_LAYER);
  const crop: CropMode = ex.crop ?? 'full';
  return {
    checkpoint: job.model.source,
    checkpointId: job.model.checkpointId,
    dataset: job.dataset.name,
    datasetRoot: job.dataset.root,
    datasetId: recordsIdentity(job.records),
    split: job.split,
    layer: layer.requested,
    featureLayer: layer.layer,
    pooling: layer.pooling,
    crop,
    ...(crop === 'cam' ? { camThreshold: ex.camThreshold ?? DEFAULT_CAM_THRESHOLD } : {}),
    inputSize: modelInputSize(job.model.fm, ex.inputSize),
    preprocessing: describePreprocessing(ex.preprocessing ?? job.model.fm.meta?.preprocessing ?? 'unit'),
    ...(ex.skipBadImages ? { skipBadImages: true } : {}),
  };
}

/** Extracts the features of `records` into `out`, or reuses `out` when it holds the same features (same cache key)
 *  and `force` is not set. With `job.shard`, extracts that shard's records into its part folder under `out`. */
export async function ensureFeatures(job: FeatureJob): Promise<FeatureJobResult> {
  const source = featureSourceOf(job);
  const cacheKey = cacheKeyOf(source);
  if (job.shard) return ensureFeaturePart(job, job.shard, source, cacheKey);
  const existingDir = resolveAtomicDir(job.out);
  if (!job.force && existingDir) {
    const meta = readFeatureMeta(existingDir);
    if (meta && meta.cacheKey === cacheKey && fs.existsSync(path.join(existingDir, 'features.npy'))) {
      job.onStart?.(true, meta.count);
      return { dir: existingDir, meta, reused: true };
    }
  }
  // Checked before extracting: a folder that is a file, a checkpoint or another tool's fails at once.
  prepareOutFolder(job.out, { ...FEATURES_OUTPUT, rerun: job.rerun ?? 'replace' }, { force: job.force });
  job.onStart?.(false, job.records.length);
  const files = await extractFeatureFiles(job, job.records, source, cacheKey);
  await writeFeatureSet(job.out, files);
  return { dir: path.resolve(job.out), meta: files.meta, reused: false };
}

/** Extracts `records` (all of the job's, or one shard's) into the files of a feature folder. */
async function extractFeatureFiles(job: FeatureJob, records: ImageRecord[], source: FeatureSource, cacheKey: string): Promise<Parameters<typeof writeFeatureFiles>[1]> {
  const res = await extractFeatures(job.model.fm, records, job.extract);
  const classNames = job.dataset.classNames;
  const kept = res.kept.map((i) => records[i]);
  // missing, empty or unreadable files the dataset loader left out (--skip-bad-images), listed once (by shard 0),
  // then the images that failed to decode
  const loaderSkips = !job.shard || job.shard.index === 0 ? job.dataset.skipped ?? [] : [];
  const skipped = [
    ...loaderSkips.map((k) => ({ id: null, path: k.file, reason: k.reason })),
    ...res.skipped.map(({ id, path: p, reason }) => ({ id, path: p, reason })),
  ];
  const rows: FeatureIndexRow[] = kept.map((r, i) => ({ row: i, imageId: r.id, path: r.path, classId: r.label, className: classNames[r.label], split: r.split }));
  const meta: FeaturesMeta = {
    format: 'gapcam-features',
    version: 1,
    cacheKey,
    source,
    count: res.count,
    dimension: res.dimension,
    classNames,
    createdAt: new Date().toISOString(),
    seconds: res.seconds,
    imagesPerSecond: res.imagesPerSecond,
    extra: {
      ...(res.crop === 'full' ? {} : { wholeImageFallbacks: res.fallbacks, crops: 'crops.csv' }),
      ...(skipped.length ? { skippedImages: skipped } : {}),
    },
  };
  return { data: res.data, rows, meta, extraFiles: res.crop === 'full' ? undefined : { [CROPS_FILE]: cropsCsv(kept, res.regions, res.camClasses) } };
}

/** The fingerprint every shard of a features run shares: model bytes, the whole selection, the extraction options. */
function featureFingerprint(job: FeatureJob, source: FeatureSource): PartHeader['fingerprint'] {
  const { checkpoint: _c, checkpointId: _i, datasetRoot: _r, datasetId: _d, ...options } = source;
  return {
    model: modelFingerprint(job.model.source),
    dataset: datasetSelectionFingerprint(job.dataset.root, job.dataset.classNames, job.records),
    options: optionsFingerprint({ kind: 'features', ...options }),
  };
}

/** One shard: its records' features as a part (reused when a complete part with the same fingerprint is there). */
async function ensureFeaturePart(job: FeatureJob, spec: ShardSpec, source: FeatureSource, cacheKey: string): Promise<FeatureJobResult> {
  const { start, end } = shardRange(job.records.length, spec);
  const records = job.records.slice(start, end);
  const fingerprint = featureFingerprint(job, source);
  const dir = partDir(job.out, spec);
  if (!job.force) {
    const found = fs.existsSync(dir) ? readPart(dir, { verifyHashes: false }) : undefined;
    const meta = found ? readFeatureMeta(dir) : undefined;
    const same = found && meta && found.manifest.kind === 'features' && (['model', 'dataset', 'options'] as const).every((k) => found.manifest.fingerprint[k] === fingerprint[k]);
    if (same) {
      job.onStart?.(true, meta.count);
      return { dir, meta, reused: true };
    }
  }
  job.onStart?.(false, records.length);
  const files = await extractFeatureFiles(job, records, source, cacheKey);
  files.meta.extra = { ...files.meta.extra, shard: { index: spec.index, count: spec.count, start, end } };
  const ids = files.rows.map((r) => r.imageId);
  await writePart(job.out, spec, {
    kind: 'features',
    images: { total: job.records.length, start, end, count: ids.length, firstId: ids[0] ?? null, lastId: ids[ids.length - 1] ?? null, idsSha256: idsFingerprint(ids) },
    fingerprint,
    settings: { ...source },
  }, (tmp) => writeFeatureFiles(tmp, files));
  return { dir, meta: files.meta, reused: false };
}

export interface RunFeaturesOptions extends ExtractOptions {
  checkpoint: string;
  dataset?: string;
  dataRoot?: string;
  split?: SplitChoice;
  force?: boolean;
  out?: string;
  checkpointRoot?: string;
  onStart?: FeatureJob['onStart'];
  /** Only the first `limit` images of the split (before sharding). */
  limit?: number;
  shard?: ShardSpec;
}

export function defaultFeatureDir(checkpointRoot: string, modelName: string, dataset: string, split: string, layer: string, crop: string): string {
  return path.join(checkpointRoot, 'features', modelName, slug(`${dataset}-${split}-${layer}-${crop}`));
}

/** `gapcam features`: loads the model and the dataset, then ensureFeatures. */
export async function runFeatures(options: RunFeaturesOptions): Promise<FeatureJobResult & { model: LoadedFeatureModel }> {
  const model = await loadFeatureModel(options.checkpoint, { checkpointRoot: options.checkpointRoot });
  const dataset = await loadDataset(options.dataset, { dataRoot: resolveDataRoot(options.dataRoot), minClasses: 1, skipBadImages: options.skipBadImages });
  const split = options.split ?? 'all';
  let records = selectSplit(dataset, split);
  if (options.limit !== undefined) {
    if (!Number.isInteger(options.limit) || options.limit < 1) throw new UserError(`--limit: expected a positive integer, found ${options.limit}`);
    records = records.slice(0, options.limit);
  }
  const out = options.out ?? defaultFeatureDir(options.checkpointRoot ?? defaultCheckpointRoot(), model.name, dataset.name, split, options.layer ?? DEFAULT_LAYER, options.crop ?? 'full');
  const result = await ensureFeatures({
    model, dataset, records, split, out, force: options.force, rerun: options.out ? 'refuse' : 'replace', extract: options, onStart: options.onStart, shard: options.shard,
  });
  return { ...result, model };
}

export type { Split };
