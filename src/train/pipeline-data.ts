// Connects the trainer to the data module: dataset records + the recipe's transforms → TrainData. The epoch's order
// is the data pipeline's own seeded order (epochOrder(seed, epoch)); a resumed epoch skips the batches already
// trained by slicing that order, and augmentation is seeded per (seed, epoch, image id), so a resumed run sees
// exactly the images an uninterrupted one would.
import path from 'node:path';
import { batches, epochOrder, type BatchStream } from '../data/pipeline.js';
import { recipeOutputSize, type Transform as DataTransform } from '../data/transforms.js';
import type { Dataset, ImageRecord, PreprocessMode } from '../data/types.js';
import { UserError } from '../errors.js';
import { cacheRoot } from '../data/sizes.js';
import { sizeHW, type Recipe, type Transform } from '../recipes/schema.js';
import type { TrainData } from './data.js';

/** Decoded-image cache shared by runs (raw RGB after each recipe's deterministic transforms), under the data
 *  module's cache root (GAPCAM_CACHE_DIR, else .cache under the work root). */
export function defaultImageCacheDir(): string {
  return path.join(cacheRoot(), 'images');
}

/** The recipe's transforms for the data pipeline, sizes filled in from the input size; checked to end at it. */
export function pipelineTransforms(transforms: readonly Transform[], inputSize: number | [number, number], which: string): DataTransform[] {
  const [h, w] = sizeHW(inputSize);
  const out: DataTransform[] = transforms.map((t) => {
    switch (t.op) {
      case 'resize':
        return { op: 'resize', mode: t.mode, size: t.size ?? (t.mode === 'exact' ? [h, w] : Math.min(h, w)) };
      case 'center-crop':
        return { op: 'center-crop', size: t.size ?? [h, w] };
      case 'random-crop':
        return { op: 'random-crop', size: t.size ?? [h, w], ...(t.scale ? { scale: t.scale } : {}), ...(t.ratio ? { ratio: t.ratio } : {}) };
      case 'flip':
        return { op: 'flip', p: t.p };
    }
  });
  const end = recipeOutputSize(out);
  if (!end || end[0] !== h || end[1] !== w) {
    throw new UserError(`recipe data.${which}: the transforms end at ${end ? `${end[0]}×${end[1]}` : 'a size that depends on the image'}, ` +
      `but the input size is ${h}×${w} (end with a resize, center-crop or random-crop to the input size)`);
  }
  return out;
}

export interface DatasetTrainDataOptions {
  recipe: Recipe;
  dataset: Dataset;
  train: ImageRecord[];
  val?: ImageRecord[];
  /** Decoded-image cache folder (undefined: defaultImageCacheDir; null: no cache, in memory either). */
  cacheDir?: string | null;
  /** The bounded in-memory decode cache (GAPCAM_DECODE_CACHE_MB); default: on unless cacheDir is null. */
  memoryCache?: boolean;
  skipBadImages?: boolean;
  /** Decode worker threads (default: the pipeline's, GAPCAM_DECODE_WORKERS); 0 decodes on the main thread. */
  workers?: number;
  /** The model's preprocessing (default: the recipe's, which a run resolves from its backbone when unset). */
  preprocessing?: PreprocessMode;
}

/** TrainData over dataset records, decoded by the data pipeline. */
export function datasetTrainData(o: DatasetTrainDataOptions): TrainData {
  const { recipe } = o;
  const trainTransforms = pipelineTransforms(recipe.data.trainTransforms, recipe.data.inputSize, 'trainTransforms');
  const evalTransforms = pipelineTransforms(recipe.data.evalTransforms, recipe.data.inputSize, 'evalTransforms');
  const cacheDir = o.cacheDir === null ? undefined : (o.cacheDir ?? defaultImageCacheDir());
  const bs = recipe.batchSize;
  const preprocess = o.preprocessing ?? recipe.data.preprocessing;
  if (preprocess === undefined) throw new Error('datasetTrainData: the preprocessing is not resolved (give it, or set it in the recipe)');
  const memoryCache = o.memoryCache ?? o.cacheDir !== null;
  const common = { batchSize: bs, preprocess, cacheDir, memoryCache, workers: o.workers, skipBadImages: o.skipBadImages } as const;
  // Images the pipeline leaves out (skipBadImages), by file: a bad image fails again every epoch.
  const skipped = new Map<string, string>();
  const strip = async function* (stream: BatchStream) {
    try {
      for await (const b of stream) yield { images: b.images, labels: b.labels };
    } finally {
      for (const s of stream.stats.skipped) skipped.set(s.file, s.reason);
    }
  };
  const data: TrainData = {
    trainSize: o.train.length,
    numClasses: o.dataset.classNames.length,
    skipped: () => [...(o.dataset.skipped ?? []), ...[...skipped].map(([file, reason]) => ({ file, reason }))],
    trainBatches(epoch: number, startBatch: number) {
      const order = epochOrder(o.train.length, true, recipe.seed, epoch);
      const records = order.slice(startBatch * bs).map((i) => o.train[i]);
      return strip(batches(records, { ...common, transforms: trainTransforms, shuffle: false, seed: recipe.seed, epoch }));
    },
  };
  if (o.val && o.val.length) {
    const val = o.val;
    data.valSize = val.length;
    data.valBatches = () => strip(batches(val, { ...common, transforms: evalTransforms, shuffle: false, seed: recipe.seed, epoch: 0 }));
  }
  return data;
}
