// What the trainer reads: batches of images and labels per epoch. A source must make the order (and any random
// augmentation) a function of (seed, epoch, position) only, so that a resumed run sees the batches an
// uninterrupted one would. `memoryData` serves tensors held in memory (tests, benchmarks, small sets).
import * as tf from '@tensorflow/tfjs';
import { makeRng, shuffleInPlace } from '../util/random.js';
import type { Skip } from '../data/types.js';

export interface LabelledBatch {
  /** NHWC, preprocessed; the trainer disposes it. */
  images: tf.Tensor4D;
  labels: Int32Array;
}

export interface TrainData {
  /** Training images per epoch; steps per epoch = ceil(trainSize / batchSize). */
  trainSize: number;
  numClasses: number;
  /** Batches of 0-based `epoch`, from batch index `startBatch` on. */
  trainBatches(epoch: number, startBatch: number): AsyncIterable<LabelledBatch>;
  /** The held-out split scored after each epoch (absent: no validation). */
  valBatches?(): AsyncIterable<LabelledBatch>;
  valSize?: number;
  /** Releases what the source holds (prefetch buffers, cached tensors). */
  dispose?(): void;
  /** Images left out so far by skipBadImages (each file once), for the run's skipped.txt. */
  skipped?(): Skip[];
  /** The same source as worker `rank` of `size` sees it in data-parallel training: each batch is only that worker's
   *  slice (sliceOf) of the global batch, decoded alone; sizes (trainSize, valSize) stay global. Empty validation
   *  slices are left out; a training slice is never empty. Absent: DataParallel decodes whole batches and slices. */
  sharded?(rank: number, size: number): TrainData;
}

/** Rows [start, end) of a batch of `rows` that worker `rank` of `size` takes (contiguous, sizes differ by ≤ 1). */
export function sliceOf(rows: number, rank: number, size: number): [number, number] {
  return [Math.floor((rank * rows) / size), Math.floor(((rank + 1) * rows) / size)];
}

/** Worker `rank` of `size`: which slice of every global batch a sharded source serves. */
export interface Shard {
  rank: number;
  size: number;
}

/** The slice of `items` (one global batch) that `shard` takes (all of them without a shard). */
export function shardOf<T extends { length: number; slice(start: number, end: number): T }>(items: T, shard?: Shard): T {
  if (!shard) return items;
  const [s, e] = sliceOf(items.length, shard.rank, shard.size);
  return items.slice(s, e);
}

/** A seeded permutation of 0..n-1 for one epoch (the shared Fisher–Yates, seeded with `seed:epoch`). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  return shuffleInPlace(Int32Array.from({ length: n }, (_, i) => i), makeRng(`${seed}:${epoch}`));
}

export interface MemoryDataOptions {
  images: tf.Tensor4D;
  labels: Int32Array | number[];
  numClasses: number;
  batchSize: number;
  seed?: number;
  shuffle?: boolean;
  valImages?: tf.Tensor4D;
  valLabels?: Int32Array | number[];
}

/** Batches sliced from tensors in memory (the caller keeps ownership of the tensors it passes); with `shard`, only
 *  that worker's slice of each batch (TrainData.sharded). */
export function memoryData(opts: MemoryDataOptions, shard?: Shard): TrainData {
  const n = opts.images.shape[0];
  const labels = Int32Array.from(opts.labels);
  const bs = opts.batchSize;
  const seed = opts.seed ?? 1;
  const gather = (x: tf.Tensor4D, idx: Int32Array) => tf.tidy(() => tf.gather(x, tf.tensor1d(idx, 'int32')) as tf.Tensor4D);
  const src: TrainData = {
    trainSize: n,
    numClasses: opts.numClasses,
    async *trainBatches(epoch: number, startBatch: number) {
      const order = opts.shuffle === false ? Int32Array.from({ length: n }, (_, i) => i) : epochPermutation(n, seed, epoch);
      for (let b = startBatch; b * bs < n; b++) {
        const global = order.subarray(b * bs, Math.min(n, (b + 1) * bs));
        const idx = shardOf(global, shard);
        yield { images: gather(opts.images, idx), labels: Int32Array.from(idx, (i) => labels[i]) };
      }
    },
  };
  if (opts.valImages && opts.valLabels) {
    const vx = opts.valImages;
    const vy = Int32Array.from(opts.valLabels);
    const vn = vx.shape[0];
    src.valSize = vn;
    src.valBatches = async function* () {
      for (let gs = 0; gs < vn; gs += bs) {
        const [s, e] = shard ? sliceOf(Math.min(vn, gs + bs) - gs, shard.rank, shard.size).map((i) => gs + i) : [gs, Math.min(vn, gs + bs)];
        if (e <= s) continue;
        yield { images: tf.slice(vx, [s, 0, 0, 0], [e - s, -1, -1, -1]) as tf.Tensor4D, labels: vy.slice(s, e) };
      }
    };
  }
  src.sharded = (rank, size) => memoryData(opts, { rank, size });
  return src;
}
