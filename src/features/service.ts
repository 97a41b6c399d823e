// `gapcam features`: load a model and a dataset, extract (or reuse) a feature folder.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Box, Dataset, ImageRecord, Split } from '../data/types.js';
import { loadDataset, resolveDataRoot } from '../data/datasets.js';
import { loadModelRef } from '../models/refs.js';
import { defaultCheckpointRoot } from '../paths.js';
import { UserError } from '../errors.js';
import {
  extractFeatures, modelInputSize, resolveFeatureLayer, DEFAULT_CAM_THRESHOLD, DEFAULT_LAYER,
  type CropMode, type ExtractOptions, type FeatureModel,
} from './extract.js';
import { readFeatureMeta, writeFeatureSet, type FeatureIndexRow, type FeatureSource, type FeaturesMeta } from './store.js';
import { resolveAtomicDir } from '../util/atomic.js';
import { slug } from '../util/names.js';

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
  extract?: ExtractOptions;
  /** Called once it is known whether the folder is reused. */
  onStart?: (reused: boolean, count: number) => void;
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
    preprocessing: ex.preprocessing ?? job.model.fm.meta?.preprocessing ?? 'unit',
    ...(ex.skipBadImages ? { skipBadImages: true } : {}),
  };
}

/** Extracts the features of `records` into `out`, or reuses `out` when it holds the same features (same cache key)
 *  and `force` is not set. */
export async function ensureFeatures(job: FeatureJob): Promise<FeatureJobResult> {
  const source = featureSourceOf(job);
  const cacheKey = cacheKeyOf(source);
  const existingDir = resolveAtomicDir(job.out);
  if (!job.force && existingDir) {
    const meta = readFeatureMeta(existingDir);
    if (meta && meta.cacheKey === cacheKey && fs.existsSync(path.join(existingDir, 'features.npy'))) {
      job.onStart?.(true, meta.count);
      return { dir: existingDir, meta, reused: true };
    }
  }
  job.onStart?.(false, job.records.length);
  const res = await extractFeatures(job.model.fm, job.records, job.extract);
  const classNames = job.dataset.classNames;
  const kept = res.kept.map((i) => job.records[i]);
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
      ...(res.skipped.length ? { skippedImages: res.skipped.map(({ id, path: p, reason }) => ({ id, path: p, reason })) } : {}),
    },
  };
  await writeFeatureSet(job.out, {
    data: res.data,
    rows,
    meta,
    extraFiles: res.crop === 'full' ? undefined : { 'crops.csv': cropsCsv(kept, res.regions, res.camClasses) },
  });
  return { dir: path.resolve(job.out), meta, reused: false };
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
}

export function defaultFeatureDir(checkpointRoot: string, modelName: string, dataset: string, split: string, layer: string, crop: string): string {
  return path.join(checkpointRoot, 'features', modelName, slug(`${dataset}-${split}-${layer}-${crop}`));
}

/** `gapcam features`: loads the model and the dataset, then ensureFeatures. */
export async function runFeatures(options: RunFeaturesOptions): Promise<FeatureJobResult & { model: LoadedFeatureModel }> {
  const model = await loadFeatureModel(options.checkpoint, { checkpointRoot: options.checkpointRoot });
  const dataset = await loadDataset(options.dataset, { dataRoot: resolveDataRoot(options.dataRoot) });
  const split = options.split ?? 'all';
  const records = selectSplit(dataset, split);
  const out = options.out ?? defaultFeatureDir(options.checkpointRoot ?? defaultCheckpointRoot, model.name, dataset.name, split, options.layer ?? DEFAULT_LAYER, options.crop ?? 'full');
  const result = await ensureFeatures({ model, dataset, records, split, out, force: options.force, extract: options, onStart: options.onStart });
  return { ...result, model };
}

export type { Split };
