// The image pipeline: records → decoded, transformed, preprocessed batches of tensors. Decoding runs ahead of the
// consumer (up to `prefetch` batches) in decode worker threads (decode-pool.ts), which are handed the whole window at
// once and keep working through it while a synchronous TensorFlow step blocks this thread; a bounded in-memory cache
// and an optional bounded folder (disk-cache.ts) keep the decoded result of the recipe's deterministic prefix (raw
// RGB) so later epochs skip JPEG decoding (prepare.ts), and shuffling/augmentation are seeded per (seed, epoch, image
// id), so results do not depend on decode timing or on which thread decoded. Each batch's image tensor is created
// once, when the consumer asks for the batch, and the consumer disposes it.
import type sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import type { Box, ImageRecord, PreprocessMode, Skip } from './types.js';
import type { DecodeOptions } from './image.js';
import { preprocessPixels } from './preprocess.js';
import { boxToInput, clipBox, type Geometry } from './geometry.js';
import { parseTransform, recipeOutputSize, type Transform } from './transforms.js';
import { prepareImage, type PreparedImage } from './prepare.js';
import { decodeCacheBytes, threadDecodeCache } from './decode-cache.js';
import { cacheFolderBudget, imageCacheBytes, type CacheFolderBudget } from './disk-cache.js';
import { DEFAULT_DECODES_PER_WORKER, decodeNiceness, decodeWorkerCount, sharedDecodePool } from './decode-pool.js';
import { makeRng, shuffleInPlace } from '../util/random.js';
import { UserError } from '../errors.js';

export { prepareImage, type PreparedImage, type PrepareOptions } from './prepare.js';

export interface PipelineOptions {
  batchSize: number;
  /** The recipe's transforms (objects or 'resize:224'-style strings); must end at a fixed size. */
  transforms: (Transform | string)[];
  /** Per record (aligned with `records`): a region cut before the transforms, in original pixels (prepare.ts
   *  PrepareOptions.region), or undefined for the whole image. Batch.geometry and Batch.boxes then map the original
   *  image to the input through the region. */
  regions?: readonly (Box | undefined)[];
  preprocess: PreprocessMode;
  /** Shuffle the order each epoch (seeded by seed and epoch). Default false. */
  shuffle?: boolean;
  seed?: number | string;
  epoch?: number;
  /** Batches decoded ahead of the consumer (default 2). */
  prefetch?: number;
  /** Images decoded at once on this thread when there are no decode workers (default 4; sharp uses one thread per
   *  image). */
  concurrency?: number;
  /** Images each decode worker decodes at once (default 4); the workers are given the whole prefetch window and queue
   *  the rest. */
  decodesPerWorker?: number;
  /** When set, the images each worker decodes at once while the consumer finds its batches ready (decodesPerWorker
   *  again once it had to wait for one): training on the CPU engine uses 1 (pipeline-data.ts). */
  decodesPerWorkerWhileAhead?: number;
  /** Decode worker threads (default GAPCAM_DECODE_WORKERS, else a quarter of the cores, at least 1: TensorFlow's
   *  threads take the rest); 0 decodes on this thread. */
  workers?: number;
  /** Folder for cached decoded images (raw RGB after the recipe's deterministic prefix, disk-cache.ts); off when unset. */
  cacheDir?: string;
  /** Bound of that folder in bytes (default GAPCAM_IMAGE_CACHE_MB; 0: the folder is not used). */
  cacheMaxBytes?: number;
  /** Keep decoded prefixes in the decoding thread's bounded in-memory cache (decode-cache.ts; GAPCAM_DECODE_CACHE_MB).
   *  Default false: worth it for data read every epoch (training), not for one pass. */
  memoryCache?: boolean;
  /** Leave out images that fail to decode (counted in stats.skipped) instead of throwing. */
  skipBadImages?: boolean;
  /** The sizes of consecutive batches, instead of batchSize each (e.g. one data-parallel worker's slices of the
   *  global batches); they must add up to the number of records. */
  batchSizes?: readonly number[];
  /** Drop a last batch smaller than batchSize. Default false. */
  dropLast?: boolean;
  /** Keep each image's RGB input pixels (HWC uint8, after transforms) in Batch.rgb, e.g. for overlays. */
  keepRgb?: boolean;
  /** sharp resize kernel (default 'lanczos3'). */
  kernel?: keyof sharp.KernelEnum;
  background?: DecodeOptions['background'];
}

export interface Batch {
  /** NHWC float32, preprocessed. The consumer disposes it. */
  images: tf.Tensor4D;
  labels: Int32Array;
  records: ImageRecord[];
  /** Each image's position in the `records` given to batches() (records may repeat). */
  indices: number[];
  /** Each record's boxes in input coordinates (clipped to the input; boxes left entirely outside are dropped). */
  boxes: Box[][];
  /** Each image's exact map from original to input pixels (geometry.ts: boxToInput / boxToOriginal). */
  geometry: Geometry[];
  /** With keepRgb: the RGB input pixels (H×W×3 uint8) of each image. */
  rgb?: Uint8Array[];
}

export interface PipelineStats {
  batches: number;
  images: number;
  skipped: Skip[];
  cacheHits: number;
  cacheMisses: number;
  /** Seconds the consumer waited for decoding (0 when prefetching keeps up). */
  waitSeconds: number;
}

export interface BatchStream extends AsyncIterable<Batch> {
  readonly stats: PipelineStats;
  readonly inputSize: [number, number];
}

/** Reads every environment setting of the pipeline (decode workers, their nice value, the two cache bounds), so that
 *  a command refuses a bad value in one line before it writes anything, not at its first batch. */
export function checkPipelineEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  decodeWorkerCount(env);
  decodeNiceness(env);
  decodeCacheBytes(env);
  imageCacheBytes(env);
}

/** The order of one epoch: identity, or a Fisher–Yates shuffle seeded by (seed, epoch). */
export function epochOrder(n: number, shuffle: boolean, seed: number | string = 0, epoch = 0): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  return shuffle ? shuffleInPlace(order, makeRng(`order/${seed}/${epoch}`)) : order;
}

type Outcome = { ok: true; value: PreparedImage } | { ok: false; error: unknown };

/** Batches of preprocessed image tensors for one epoch (see the file header). */
export function batches(records: ImageRecord[], options: PipelineOptions): BatchStream {
  if (!(Number.isInteger(options.batchSize) && options.batchSize > 0)) throw new UserError(`batch size must be a positive integer, found ${options.batchSize}`);
  const transforms = options.transforms.map(parseTransform);
  const size = recipeOutputSize(transforms);
  if (!size) throw new UserError(`the transforms (${transforms.map((t) => t.op).join(', ') || 'none'}) do not end at a fixed size: end the recipe with resize:N, center-crop:N or random-crop:N`);
  const [H, W] = size;
  if (options.regions && options.regions.length !== records.length) throw new Error(`batches: ${options.regions.length} regions for ${records.length} records`);
  const stats: PipelineStats = { batches: 0, images: 0, skipped: [], cacheHits: 0, cacheMisses: 0, waitSeconds: 0 };
  const prefetch = Math.max(0, options.prefetch ?? 2);
  const workers = Math.max(0, options.workers ?? decodeWorkerCount());
  const pool = workers > 0 ? sharedDecodePool(workers) : undefined;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const memoryCache = options.memoryCache ? threadDecodeCache() : undefined;
  const cacheMaxBytes = options.cacheDir ? options.cacheMaxBytes ?? imageCacheBytes() : 0;
  const cacheDir = cacheMaxBytes > 0 ? options.cacheDir : undefined;
  const counted = !!(cacheDir || (options.memoryCache && (pool ? pool.cacheBytes > 0 : memoryCache)));
  const seed = options.seed ?? 0, epoch = options.epoch ?? 0;

  async function* run(): AsyncGenerator<Batch> {
    const order = epochOrder(records.length, !!options.shuffle, seed, epoch);
    const groups: number[][] = [];
    if (options.batchSizes) {
      let i = 0;
      for (const n of options.batchSizes) {
        groups.push(order.slice(i, i + n));
        i += n;
      }
      if (i !== order.length) throw new Error(`batches: batchSizes add up to ${i}, but there are ${order.length} records`);
    } else {
      for (let i = 0; i < order.length; i += options.batchSize) groups.push(order.slice(i, i + options.batchSize));
    }
    if (options.dropLast && groups.length && groups[groups.length - 1].length < options.batchSize) groups.pop();

    const budget: CacheFolderBudget | undefined = cacheDir ? await cacheFolderBudget(cacheDir, cacheMaxBytes) : undefined;
    // Stopping early (the consumer leaves the loop) drops the images the workers have not started.
    const abort = new AbortController();
    const maxPerWorker = options.decodesPerWorker ?? DEFAULT_DECODES_PER_WORKER;
    let perWorker = options.decodesPerWorkerWhileAhead ?? maxPerWorker;
    let active = 0;
    const queue: (() => void)[] = [];
    const acquire = () => new Promise<void>((resolve) => (active < concurrency ? (active++, resolve()) : queue.push(() => (active++, resolve()))));
    const release = () => { active--; const next = queue.shift(); if (next) next(); };
    const decode = async (i: number): Promise<Outcome> => {
      const r = records[i];
      const job = { transforms, region: options.regions?.[i], seed, epoch, cacheDir, cacheBudget: budget?.remaining, kernel: options.kernel, background: options.background, outputSize: size };
      if (!pool) await acquire();
      try {
        if (abort.signal.aborted) return { ok: false, error: new Error('aborted') };
        const value = pool
          ? await pool.prepare(r.path, { ...job, memoryCache: !!options.memoryCache }, r.id, { signal: abort.signal, inFlight: perWorker })
          : await prepareImage(r.path, { ...job, memoryCache }, r.id);
        return { ok: true, value };
      } catch (error) {
        return { ok: false, error };
      } finally {
        if (!pool) release();
      }
    };
    const pending: Promise<Outcome>[][] = [];
    const start = (b: number) => { if (b < groups.length) pending[b] = groups[b].map(decode); };
    for (let b = 0; b <= prefetch; b++) start(b);
    try {
      for (let b = 0; b < groups.length; b++) {
        const t0 = performance.now();
        const outcomes = await Promise.all(pending[b]);
        const waitedMs = performance.now() - t0;
        stats.waitSeconds += waitedMs / 1000;
        // the images asked for from now on: few at a time while decoding keeps ahead, all the workers can once it fell behind
        if (options.decodesPerWorkerWhileAhead !== undefined) perWorker = waitedMs > 2 ? maxPerWorker : options.decodesPerWorkerWhileAhead;
        delete pending[b];
        start(b + prefetch + 1);
        const kept: { i: number; r: ImageRecord; p: PreparedImage }[] = [];
        outcomes.forEach((o, k) => {
          const i = groups[b][k], r = records[i];
          if (o.ok) {
            kept.push({ i, r, p: o.value });
            if (counted) o.value.fromCache ? stats.cacheHits++ : stats.cacheMisses++;
            return;
          }
          if (o.error instanceof UserError && options.skipBadImages) stats.skipped.push({ file: r.path, reason: o.error.message });
          else throw o.error;
        });
        if (kept.length === 0) continue;
        const n = kept.length;
        const data = new Float32Array(n * H * W * 3);
        kept.forEach(({ p }, k) => preprocessPixels(p.rgb, options.preprocess, data.subarray(k * H * W * 3, (k + 1) * H * W * 3)));
        const batch: Batch = {
          images: tf.tensor4d(data, [n, H, W, 3]),
          labels: Int32Array.from(kept.map(({ r }) => r.label)),
          records: kept.map(({ r }) => r),
          indices: kept.map(({ i }) => i),
          boxes: kept.map(({ r, p }) => r.boxes.map((bx) => clipBox(boxToInput(bx, p.geometry), W, H)).filter((bx): bx is Box => !!bx)),
          geometry: kept.map(({ p }) => p.geometry),
        };
        if (options.keepRgb) batch.rgb = kept.map(({ p }) => p.rgb);
        stats.batches++;
        stats.images += n;
        yield batch;
      }
    } finally {
      abort.abort();
    }
  }
  return { stats, inputSize: [H, W], [Symbol.asyncIterator]: () => run() };
}

/** One line summarising skipped images (empty string when none). */
export function describeSkips(skipped: Skip[]): string {
  if (skipped.length === 0) return '';
  const first = skipped[0];
  return `skipped ${skipped.length} bad image${skipped.length > 1 ? 's' : ''} (first: ${first.reason})`;
}
