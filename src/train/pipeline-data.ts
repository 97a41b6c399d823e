// Connects the trainer to the data module: dataset records + the recipe's transforms → TrainData. The epoch's order
// is the data pipeline's own seeded order (epochOrder(seed, epoch)); a resumed epoch skips the batches already
// trained by slicing that order, and augmentation is seeded per (seed, epoch, image id), so a resumed run sees
// exactly the images an uninterrupted one would.
import path from 'node:path';
import { batches, epochOrder, type BatchStream } from '../data/pipeline.js';
import { recipeOutputSize, type Transform as DataTransform } from '../data/transforms.js';
import type { Dataset, ImageRecord, PreprocessMode } from '../data/types.js';
import { UserError } from '../errors.js';
import { currentEngine } from '../engine.js';
import { cacheRoot } from '../data/sizes.js';
import { sizeHW, type Recipe, type Transform } from '../recipes/schema.js';
import { shardOf, type Shard, type TrainData } from './data.js';

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

/** TrainData over dataset records, decoded by the data pipeline (sharded(): each data-parallel worker decodes only its
 *  own slice of every global batch, with the same order and per-image augmentation). */
export function datasetTrainData(o: DatasetTrainDataOptions): TrainData {
  const { recipe } = o;
  const trainTransforms = pipelineTransforms(recipe.data.trainTransforms, recipe.data.inputSize, 'trainTransforms');
  const evalTransforms = pipelineTransforms(recipe.data.evalTransforms, recipe.data.inputSize, 'evalTransforms');
  const cacheDir = o.cacheDir === null ? undefined : (o.cacheDir ?? defaultImageCacheDir());
  const bs = recipe.batchSize;
  const preprocess = o.preprocessing ?? recipe.data.preprocessing;
  if (preprocess === undefined) throw new Error('datasetTrainData: the preprocessing is not resolved (give it, or set it in the recipe)');
  const memoryCache = o.memoryCache ?? o.cacheDir !== null;
  // On the CPU engine the training step uses the cores and decoding fits in its gaps: one image at a time per decode
  // worker takes a core from at most one of TensorFlow's threads and costs ~15 % less CPU per image than four
  // (vgg-gap-tiny on the generic step, first epoch on image files: 0.96–0.97 × the in-memory step time against
  // 1.13–1.19 with four). A model fast enough to wait for its batches gets four at a time again (pipeline.ts):
  // vgg-gap-tiny on the fused step at 190 img/s, first epoch on digits-loc / photos, 1.39 / 1.41 × in-memory with this
  // rule against 1.44 / 1.62 always one and 1.37 / 1.52 always four. A GPU engine leaves the cores to decoding: four.
  const decodesPerWorkerWhileAhead = currentEngine()?.name === 'tensorflow-gpu' ? undefined : 1;
  const common = { batchSize: bs, preprocess, cacheDir, memoryCache, workers: o.workers, decodesPerWorkerWhileAhead, skipBadImages: o.skipBadImages } as const;
  // Images the pipeline leaves out (skipBadImages), by file: a bad image fails again every epoch.
  const skipped = new Map<string, string>();
  // `slices` (sharded training): the records of each batch the stream must yield. A worker whose whole slice of a
  // batch was skipped would run one step fewer than the others and leave them waiting in an all-reduce: say so.
  const strip = async function* (stream: BatchStream, slices?: { records: ImageRecord[][]; firstBatch: number; epoch: number; shard: Shard }) {
    let k = 0;
    const lost = () => {
      const { shard, epoch, firstBatch } = slices!;
      const why = stream.stats.skipped.at(-1)?.reason ?? 'skipped';
      return new UserError(`data-parallel worker ${shard.rank}: every image of its slice of batch ${firstBatch + k + 1} (epoch ${epoch + 1}) ` +
        `was left out by --skip-bad-images (last: ${why}); each worker needs at least one image of every batch: remove the bad images ` +
        'or use another --batch-size');
    };
    try {
      for await (const b of stream) {
        if (slices && !slices.records[k]?.includes(b.records[0])) {
          b.images.dispose();
          throw lost();
        }
        k++;
        yield { images: b.images, labels: b.labels };
      }
      if (slices && k < slices.records.length) throw lost();
    } finally {
      for (const s of stream.stats.skipped) skipped.set(s.file, s.reason);
    }
  };
  /** The records of `order` from batch `first` on, in batches of `bs` (or the shard's slices, empty ones left out). */
  const batched = (records: ImageRecord[], order: number[], first: number, shard?: Shard): ImageRecord[][] => {
    const out: ImageRecord[][] = [];
    for (let b = first; b * bs < order.length; b++) out.push(shardOf(order.slice(b * bs, (b + 1) * bs), shard).map((i) => records[i]));
    return out;
  };
  const source = (shard?: Shard): TrainData => {
    const data: TrainData = {
      trainSize: o.train.length,
      numClasses: o.dataset.classNames.length,
      skipped: () => [...(o.dataset.skipped ?? []), ...[...skipped].map(([file, reason]) => ({ file, reason }))],
      trainBatches(epoch: number, startBatch: number) {
        const order = epochOrder(o.train.length, true, recipe.seed, epoch);
        const opts = { ...common, transforms: trainTransforms, shuffle: false, seed: recipe.seed, epoch };
        if (!shard) return strip(batches(order.slice(startBatch * bs).map((i) => o.train[i]), opts));
        const slices = batched(o.train, order, startBatch, shard);
        return strip(batches(slices.flat(), { ...opts, batchSizes: slices.map((r) => r.length) }), { records: slices, firstBatch: startBatch, epoch, shard });
      },
      sharded: (rank, size) => source({ rank, size }),
    };
    if (o.val && o.val.length) {
      const val = o.val;
      data.valSize = val.length;
      const opts = { ...common, transforms: evalTransforms, shuffle: false, seed: recipe.seed, epoch: 0 };
      data.valBatches = () => {
        if (!shard) return strip(batches(val, opts));
        const slices = batched(val, val.map((_, i) => i), 0, shard).filter((r) => r.length > 0);
        return strip(batches(slices.flat(), { ...opts, batchSizes: slices.map((r) => r.length) }));
      };
    }
    return data;
  };
  return source();
}
