// The image pipeline: records → decoded, transformed, preprocessed batches of tensors. Decoding runs ahead of the
// consumer (up to `prefetch` batches, `concurrency` images at once on sharp's thread pool), an optional on-disk
// cache keeps the decoded result of the recipe's deterministic prefix (raw RGB) so later epochs skip JPEG decoding,
// and shuffling/augmentation are seeded per (seed, epoch, image id), so results do not depend on decode timing.
// Each batch's image tensor is created once, when the consumer asks for the batch, and the consumer disposes it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import type { Box, ImageRecord, PreprocessMode, Skip } from './types.js';
import { checkImageFile, decodeError, decodeWith, toRgb, type DecodeOptions } from './image.js';
import { preprocessPixels } from './preprocess.js';
import { boxToInput, clipBox, identityGeometry, type Geometry } from './geometry.js';
import {
  deterministicPrefixLength, parseTransform, planTransforms, pushResize, recipeOutputSize,
  type PlanState, type Primitive, type Transform,
} from './transforms.js';
import { makeRng, shuffleInPlace } from '../util/random.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../errors.js';

export interface PipelineOptions {
  batchSize: number;
  /** The recipe's transforms (objects or 'resize:224'-style strings); must end at a fixed size. */
  transforms: (Transform | string)[];
  preprocess: PreprocessMode;
  /** Shuffle the order each epoch (seeded by seed and epoch). Default false. */
  shuffle?: boolean;
  seed?: number | string;
  epoch?: number;
  /** Batches decoded ahead of the consumer (default 2). */
  prefetch?: number;
  /** Images decoded at once (default 4; sharp also uses its own threads inside each image). */
  concurrency?: number;
  /** Folder for cached decoded images (raw RGB after the recipe's deterministic prefix); off when unset. */
  cacheDir?: string;
  /** Leave out images that fail to decode (counted in stats.skipped) instead of throwing. */
  skipBadImages?: boolean;
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

/** One image ready for the model: RGB input pixels, preprocessed values and its geometry. */
export interface PreparedImage {
  rgb: Uint8Array;
  width: number;
  height: number;
  geometry: Geometry;
  fromCache: boolean;
}

interface RawImage { data: Uint8Array; width: number; height: number }

const CACHE_MAGIC = 0x57524347; // 'GCRW'
const CACHE_VERSION = 1;

function cacheKey(file: string, st: fs.Stats, prefix: Transform[], o: { kernel?: string; background?: number[] }): string {
  const h = crypto.createHash('sha1');
  h.update(JSON.stringify([CACHE_VERSION, path.resolve(file), st.size, st.mtimeMs, prefix, o.kernel ?? 'lanczos3', o.background ?? null]));
  return h.digest('hex');
}

async function readCache(file: string): Promise<{ srcWidth: number; srcHeight: number; img: RawImage } | undefined> {
  let buf: Buffer;
  try {
    buf = await fs.promises.readFile(file);
  } catch {
    return undefined;
  }
  if (buf.length < 20 || buf.readUInt32LE(0) !== CACHE_MAGIC) return undefined;
  const [srcWidth, srcHeight, width, height] = [4, 8, 12, 16].map((o) => buf.readUInt32LE(o));
  if (buf.length !== 20 + width * height * 3) return undefined;
  return { srcWidth, srcHeight, img: { data: new Uint8Array(buf.buffer, buf.byteOffset + 20, width * height * 3), width, height } };
}

async function writeCache(file: string, srcWidth: number, srcHeight: number, img: RawImage): Promise<void> {
  const head = Buffer.alloc(20);
  [CACHE_MAGIC, srcWidth, srcHeight, img.width, img.height].forEach((v, i) => head.writeUInt32LE(v, i * 4));
  await writeFileAtomic(file, Buffer.concat([head, Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength)]));
}

/** Mirrors an RGB image left-right (in place into a new array). */
function flipRgb(img: RawImage): RawImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let x = 0; x < w; x++) {
      const s = row + x * 3, d = row + (w - 1 - x) * 3;
      out[d] = data[s]; out[d + 1] = data[s + 1]; out[d + 2] = data[s + 2];
    }
  }
  return { data: out, width: w, height: h };
}

function extractRgb(img: RawImage, e: { left: number; top: number; width: number; height: number }): RawImage {
  if (e.left < 0 || e.top < 0 || e.left + e.width > img.width || e.top + e.height > img.height) {
    throw new Error(`extract ${JSON.stringify(e)} outside a ${img.width}×${img.height} image`);
  }
  const out = new Uint8Array(e.width * e.height * 3);
  for (let y = 0; y < e.height; y++) {
    const src = ((e.top + y) * img.width + e.left) * 3;
    out.set(img.data.subarray(src, src + e.width * 3), y * e.width * 3);
  }
  return { data: out, width: e.width, height: e.height };
}

interface Stage { pre?: Extract<Primitive, { kind: 'extract' }>; resize?: { width: number; height: number }; post?: Extract<Primitive, { kind: 'extract' }> }

/**
 * Turns displayed-frame primitives into sharp stages in the unflipped frame (flips are applied once, at the end, in
 * JS): each stage is one sharp call extract → resize → extract; consecutive extracts and resizes are fused.
 */
function toStages(ops: Primitive[], width: number, height: number): { stages: Stage[]; flip: boolean } {
  const stages: Stage[] = [];
  let cur: Stage = {};
  let flipped = false;
  let w = width, h = height;
  for (const op of ops) {
    if (op.kind === 'flip') { flipped = !flipped; continue; }
    if (op.kind === 'resize') {
      if (cur.post) { stages.push(cur); cur = {}; }
      cur.resize = { width: op.width, height: op.height };
      w = op.width; h = op.height;
      continue;
    }
    const left = flipped ? w - op.left - op.width : op.left;
    const e = { kind: 'extract' as const, left, top: op.top, width: op.width, height: op.height };
    const slot: 'pre' | 'post' = cur.resize ? 'post' : 'pre';
    const prev = cur[slot];
    cur[slot] = prev ? { ...e, left: prev.left + e.left, top: prev.top + e.top } : e;
    w = op.width; h = op.height;
  }
  if (cur.pre || cur.resize || cur.post) stages.push(cur);
  return { stages, flip: flipped };
}

function applyStage(s: sharp.Sharp, st: Stage, kernel: keyof sharp.KernelEnum): sharp.Sharp {
  if (st.pre) s = s.extract({ left: st.pre.left, top: st.pre.top, width: st.pre.width, height: st.pre.height });
  if (st.resize) s = s.resize(st.resize.width, st.resize.height, { fit: 'fill', kernel });
  if (st.post) s = s.extract({ left: st.post.left, top: st.post.top, width: st.post.width, height: st.post.height });
  return s;
}

async function runSharp(file: string, s: sharp.Sharp): Promise<RawImage> {
  try {
    const { data, info } = await s.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { data: toRgb(data, info.width, info.height, info.channels), width: info.width, height: info.height };
  } catch (err) {
    throw decodeError(file, err);
  }
}

const rawSharp = (img: RawImage) =>
  sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } });

/** Runs primitives on an image: the first stage may start from the file's bytes (decoding fused with it). */
async function runOps(file: string, start: { bytes: Buffer } | { img: RawImage }, ops: Primitive[], width: number, height: number, o: { kernel: keyof sharp.KernelEnum; background?: DecodeOptions['background'] }): Promise<RawImage> {
  const { stages, flip } = toStages(ops, width, height);
  let img: RawImage | undefined = 'img' in start ? start.img : undefined;
  if ('bytes' in start) {
    const first = stages[0] ?? {};
    img = await decodeWith(file, start.bytes, { background: o.background }, (s) => applyStage(s, first, o.kernel));
    stages.shift();
  }
  for (const st of stages) {
    // A crop of pixels already in memory is a row copy: no need for a sharp round trip.
    img = !st.resize && st.pre && !st.post ? extractRgb(img!, st.pre) : await runSharp(file, applyStage(rawSharp(img!), st, o.kernel));
  }
  return flip ? flipRgb(img!) : img!;
}

async function sourceSize(file: string, bytes: Buffer): Promise<{ width: number; height: number }> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes).metadata();
  } catch (err) {
    throw decodeError(file, err);
  }
  if (!meta.width || !meta.height) throw new UserError(`cannot decode image ${file}: no width/height in its header`);
  return (meta.orientation ?? 1) >= 5 ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
}

export interface PrepareOptions {
  transforms: (Transform | string)[];
  /** Random generator for the random transforms (default: seeded by seed/epoch/id). */
  rng?: () => number;
  seed?: number | string;
  epoch?: number;
  cacheDir?: string;
  kernel?: keyof sharp.KernelEnum;
  background?: DecodeOptions['background'];
  /** Resize to this [height, width] at the end when the recipe leaves another size. */
  outputSize?: [number, number];
}

/**
 * Decodes one image file and applies the recipe: returns the RGB input pixels and the exact geometry. With a cache
 * folder, the decoded result of the recipe's deterministic prefix is read from / written to the cache.
 */
export async function prepareImage(file: string, options: PrepareOptions, id = file): Promise<PreparedImage> {
  const transforms = options.transforms.map(parseTransform);
  const rng = options.rng ?? makeRng(`${options.seed ?? 0}/${options.epoch ?? 0}/${id}`);
  const nPrefix = options.cacheDir ? deterministicPrefixLength(transforms) : 0;
  const prefix = transforms.slice(0, nPrefix), rest = transforms.slice(nPrefix);
  const kernel = options.kernel ?? 'lanczos3';
  const finish = (s: PlanState) => {
    if (options.outputSize && (s.height !== options.outputSize[0] || s.width !== options.outputSize[1])) pushResize(s, options.outputSize[1], options.outputSize[0]);
    return s;
  };
  const fresh = (w: number, h: number): PlanState => ({ width: w, height: h, geometry: identityGeometry(w, h), ops: [] });
  const constant = () => 0.5; // deterministic transforms draw nothing that matters

  let st: fs.Stats | undefined;
  let cacheFile: string | undefined;
  if (options.cacheDir) {
    await checkImageFile(file);
    st = await fs.promises.stat(file);
    cacheFile = path.join(options.cacheDir, cacheKey(file, st, prefix, options).slice(0, 2), `${cacheKey(file, st, prefix, options)}.rgb`);
    const hit = await readCache(cacheFile);
    if (hit) {
      const pre = planTransforms(prefix, fresh(hit.srcWidth, hit.srcHeight), constant);
      if (pre.width === hit.img.width && pre.height === hit.img.height) {
        const after = finish(planTransforms(rest, { width: pre.width, height: pre.height, geometry: identityGeometry(pre.width, pre.height), ops: [] }, rng));
        const img = await runOps(file, { img: hit.img }, after.ops, pre.width, pre.height, { kernel, background: options.background });
        const geometry = { ...composeAll(pre.geometry, after.geometry) };
        return { rgb: img.data, width: img.width, height: img.height, geometry, fromCache: true };
      }
    }
  }
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch {
    await checkImageFile(file);
    throw new UserError(`cannot read image file ${file}`);
  }
  if (bytes.length === 0) throw new UserError(`image file is empty (0 bytes): ${file}`);
  const src = await sourceSize(file, bytes);
  if (cacheFile) {
    const pre = planTransforms(prefix, fresh(src.width, src.height), constant);
    const base = await runOps(file, { bytes }, pre.ops, src.width, src.height, { kernel, background: options.background });
    await writeCache(cacheFile, src.width, src.height, base);
    const after = finish(planTransforms(rest, { width: base.width, height: base.height, geometry: identityGeometry(base.width, base.height), ops: [] }, rng));
    const img = await runOps(file, { img: base }, after.ops, base.width, base.height, { kernel, background: options.background });
    return { rgb: img.data, width: img.width, height: img.height, geometry: composeAll(pre.geometry, after.geometry), fromCache: false };
  }
  const plan = finish(planTransforms(transforms, fresh(src.width, src.height), rng));
  const img = await runOps(file, { bytes }, plan.ops, src.width, src.height, { kernel, background: options.background });
  return { rgb: img.data, width: img.width, height: img.height, geometry: plan.geometry, fromCache: false };
}

/** Composes two geometries: `first` (original → middle), then `second` (middle → input). */
function composeAll(first: Geometry, second: Geometry): Geometry {
  return {
    ax: first.ax * second.ax, bx: first.bx * second.ax + second.bx,
    ay: first.ay * second.ay, by: first.by * second.ay + second.by,
    srcWidth: first.srcWidth, srcHeight: first.srcHeight, width: second.width, height: second.height,
    flipped: first.ax * second.ax < 0,
  };
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
  const stats: PipelineStats = { batches: 0, images: 0, skipped: [], cacheHits: 0, cacheMisses: 0, waitSeconds: 0 };
  const prefetch = Math.max(0, options.prefetch ?? 2);
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const seed = options.seed ?? 0, epoch = options.epoch ?? 0;

  async function* run(): AsyncGenerator<Batch> {
    const order = epochOrder(records.length, !!options.shuffle, seed, epoch);
    const groups: number[][] = [];
    for (let i = 0; i < order.length; i += options.batchSize) groups.push(order.slice(i, i + options.batchSize));
    if (options.dropLast && groups.length && groups[groups.length - 1].length < options.batchSize) groups.pop();

    let aborted = false;
    let active = 0;
    const queue: (() => void)[] = [];
    const acquire = () => new Promise<void>((resolve) => (active < concurrency ? (active++, resolve()) : queue.push(() => (active++, resolve()))));
    const release = () => { active--; const next = queue.shift(); if (next) next(); };
    const decode = async (r: ImageRecord): Promise<Outcome> => {
      await acquire();
      try {
        if (aborted) return { ok: false, error: new Error('aborted') };
        const value = await prepareImage(r.path, { transforms, seed, epoch, cacheDir: options.cacheDir, kernel: options.kernel, background: options.background, outputSize: size }, r.id);
        return { ok: true, value };
      } catch (error) {
        return { ok: false, error };
      } finally {
        release();
      }
    };
    const pending: Promise<Outcome>[][] = [];
    const start = (b: number) => { if (b < groups.length) pending[b] = groups[b].map((i) => decode(records[i])); };
    for (let b = 0; b <= prefetch; b++) start(b);
    try {
      for (let b = 0; b < groups.length; b++) {
        const t0 = performance.now();
        const outcomes = await Promise.all(pending[b]);
        stats.waitSeconds += (performance.now() - t0) / 1000;
        delete pending[b];
        start(b + prefetch + 1);
        const kept: { r: ImageRecord; p: PreparedImage }[] = [];
        outcomes.forEach((o, k) => {
          const r = records[groups[b][k]];
          if (o.ok) {
            kept.push({ r, p: o.value });
            if (options.cacheDir) o.value.fromCache ? stats.cacheHits++ : stats.cacheMisses++;
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
          boxes: kept.map(({ r, p }) => r.boxes.map((bx) => clipBox(boxToInput(bx, p.geometry), W, H)).filter((bx): bx is Box => !!bx)),
          geometry: kept.map(({ p }) => p.geometry),
        };
        if (options.keepRgb) batch.rgb = kept.map(({ p }) => p.rgb);
        stats.batches++;
        stats.images += n;
        yield batch;
      }
    } finally {
      aborted = true;
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
