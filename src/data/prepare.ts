// One image file → the model's input pixels: decode with sharp, apply the recipe's transforms, and keep the exact
// geometry. Free of TensorFlow so that the decode workers (decode-worker.ts) can run it. Two caches keep the decoded
// result of the recipe's deterministic prefix (raw RGB, e.g. after `resize:256:shorter`): a bounded in-memory LRU
// (decode-cache.ts) and an optional bounded folder (disk-cache.ts); random transforms always run after the cache,
// seeded per image.
import fs from 'node:fs';
import sharp from 'sharp';
import { checkImageFile, decodeError, decodeWith, toRgb, type DecodeOptions } from './image.js';
import { identityGeometry, type Geometry } from './geometry.js';
import { deterministicPrefixLength, parseTransform, planTransforms, pushRegion, pushResize, type PlanState, type Primitive, type Transform } from './transforms.js';
import type { Box } from './types.js';
import type { CachedDecode, DecodeCache, RawImage } from './decode-cache.js';
import { cacheEntryFile, decodeCacheKey, readCacheEntry, writeCacheEntry } from './disk-cache.js';
import { makeRng } from '../util/random.js';
import { UserError } from '../errors.js';

/** One image ready for the model: RGB input pixels (owned by the caller) and its geometry. */
export interface PreparedImage {
  rgb: Uint8Array;
  width: number;
  height: number;
  geometry: Geometry;
  fromCache: boolean;
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
  /** A region to cut before the transforms: an inclusive box in original pixels (after EXIF orientation, as
   *  ImageRecord boxes are), taken as the whole pixels covering it (geometry.ts boxRegion). Part of the cache key. */
  region?: Box;
  /** Random generator for the random transforms (default: seeded by seed/epoch/id). */
  rng?: () => number;
  seed?: number | string;
  epoch?: number;
  /** Folder for cached decoded images (raw RGB after the recipe's deterministic prefix); off when unset. */
  cacheDir?: string;
  /** What may still be added to the folder (disk-cache.ts: CacheFolderBudget.remaining, shared with other threads);
   *  a missing entry is written only if it fits. Unset: no bound. */
  cacheBudget?: BigInt64Array;
  /** In-memory cache of the same decoded prefix (checked before the folder); off when unset. */
  memoryCache?: DecodeCache;
  kernel?: keyof sharp.KernelEnum;
  background?: DecodeOptions['background'];
  /** Resize to this [height, width] at the end when the recipe leaves another size. */
  outputSize?: [number, number];
}

/**
 * Decodes one image file and applies the recipe: returns the RGB input pixels and the exact geometry. With a
 * cache (in memory and/or a folder), the decoded result of the recipe's deterministic prefix is read from / written
 * to it, and only the rest of the transforms run on a hit.
 */
export async function prepareImage(file: string, options: PrepareOptions, id = file): Promise<PreparedImage> {
  const transforms = options.transforms.map(parseTransform);
  const rng = options.rng ?? makeRng(`${options.seed ?? 0}/${options.epoch ?? 0}/${id}`);
  const cached = !!(options.cacheDir || options.memoryCache);
  const nPrefix = cached ? deterministicPrefixLength(transforms) : 0;
  const prefix = transforms.slice(0, nPrefix), rest = transforms.slice(nPrefix);
  const kernel = options.kernel ?? 'lanczos3';
  const finish = (s: PlanState) => {
    if (options.outputSize && (s.height !== options.outputSize[0] || s.width !== options.outputSize[1])) pushResize(s, options.outputSize[1], options.outputSize[0]);
    return s;
  };
  const fresh = (w: number, h: number): PlanState => ({ width: w, height: h, geometry: identityGeometry(w, h), ops: [] });
  // The source frame the recipe starts from: the image, or its region.
  const origin = (w: number, h: number): PlanState => {
    const s = fresh(w, h);
    if (options.region) pushRegion(s, options.region);
    return s;
  };
  const constant = () => 0.5; // deterministic transforms draw nothing that matters
  // The random rest of the recipe on the cached prefix; a copy when nothing is left to do (the cache keeps its pixels).
  const fromBase = async (base: CachedDecode, fromCache: boolean): Promise<PreparedImage> => {
    const pre = planTransforms(prefix, origin(base.srcWidth, base.srcHeight), constant);
    const after = finish(planTransforms(rest, fresh(pre.width, pre.height), rng));
    const img = await runOps(file, { img: base.img }, after.ops, pre.width, pre.height, { kernel, background: options.background });
    const rgb = img.data === base.img.data ? img.data.slice() : img.data;
    return { rgb, width: img.width, height: img.height, geometry: composeAll(pre.geometry, after.geometry), fromCache };
  };
  const fits = (c: CachedDecode) => {
    const pre = planTransforms(prefix, origin(c.srcWidth, c.srcHeight), constant);
    return pre.width === c.img.width && pre.height === c.img.height;
  };

  let key: string | undefined;
  let cacheFile: string | undefined;
  if (cached) {
    key = decodeCacheKey(file, await checkImageFile(file), prefix, options);
    const inMemory = options.memoryCache?.get(key);
    if (inMemory) return fromBase(inMemory, true);
    if (options.cacheDir) {
      cacheFile = cacheEntryFile(options.cacheDir, key);
      const hit = await readCacheEntry(cacheFile);
      if (hit && fits(hit)) {
        options.memoryCache?.set(key, hit);
        return fromBase(hit, true);
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
  if (key) {
    const pre = planTransforms(prefix, origin(src.width, src.height), constant);
    const base: CachedDecode = { srcWidth: src.width, srcHeight: src.height, img: await runOps(file, { bytes }, pre.ops, src.width, src.height, { kernel, background: options.background }) };
    if (cacheFile) await writeCacheEntry(cacheFile, src.width, src.height, base.img, options.cacheBudget);
    options.memoryCache?.set(key, base);
    return fromBase(base, false);
  }
  const plan = finish(planTransforms(transforms, origin(src.width, src.height), rng));
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

