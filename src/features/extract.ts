// GAP features: one vector per image from a model's global-average-pooling layer (or any named layer, globally
// average-pooled when it is spatial), from the whole image, the model's own CAM box, or the ground-truth box.
//
// Layer 'gap' (the default) is the feature a linear classifier after global average pooling sees:
//   gap-dense head (VGGnet-GAP: features → GAP → Dense): the GAP layer's output (1024-D for VGGnet-GAP), the
//     paper's transferred feature;
//   conv-gap head (NiN / darknet-tiny: features → 1×1 class conv → GAP): the last feature map before the class conv,
//     globally average-pooled (128-D for darknet-tiny). Since the 1×1 conv is linear, the model's class scores are an
//     affine function of exactly this vector (GAP∘conv = conv∘GAP), so it plays the role of VGGnet-GAP's 1024-D.
// Any other layer is taken by name: a 4-D [N, h, w, C] output is averaged over h × w, a 2-D output is used as is.
//
// Crop 'cam' (the paper's "on crop" column): the image is first run whole, the CAM of the model's top-1 class is
// upsampled to the input size and boxed by the paper's rule (keep ≥ 20 % of the maximum after min-max
// normalisation, largest connected component), the box mapped to original pixels, and the features are taken from
// that crop resized to the input. Crop 'gt-box': from the ground-truth box (the union of the image's boxes).
import * as tf from '@tensorflow/tfjs';
import { performance } from 'node:perf_hooks';
import type { Box, ImageRecord } from '../data/types.js';
import { unionBox } from '../data/geometry.js';
import type { CamModel, ModelMeta } from '../models/types.js';
import { inboundLayer } from '../models/head.js';
import { classActivationMaps, topKSelection } from '../cam/class-maps.js';
import { camBox } from '../cam/box.js';
import { DEFAULT_CAM_BOX_FRACTION } from '../eval/localization.js';
import { batches } from '../data/pipeline.js';
import { UserError } from '../errors.js';
import { fastPredictor } from '../perf/sequential-step.js';

export const CROP_MODES = ['full', 'cam', 'gt-box'] as const;
export type CropMode = (typeof CROP_MODES)[number];
export const DEFAULT_LAYER = 'gap';
export const DEFAULT_BATCH_SIZE = 32;
export const DEFAULT_CAM_THRESHOLD = DEFAULT_CAM_BOX_FRACTION;

/** A model to extract from: a Layers model with its CAM meta when it has a CAM-ready head. */
export interface FeatureModel {
  model: tf.LayersModel;
  meta?: ModelMeta;
}

export interface ResolvedLayer {
  /** What the user asked for ('gap' or a layer name). */
  requested: string;
  /** The layer whose output is taken. */
  layer: string;
  pooling: 'identity' | 'global-average';
  dimension: number;
}

function layerByName(model: tf.LayersModel, name: string): tf.layers.Layer {
  try {
    return model.getLayer(name);
  } catch {
    const names = model.layers.map((l) => l.name);
    const shown = names.length > 12 ? [...names.slice(0, 4), '…', ...names.slice(-6)] : names;
    throw new UserError(`--layer '${name}': no such layer in model '${model.name}' (layers: ${shown.join(', ')}; or 'gap')`);
  }
}

function outputShapeOf(layer: tf.layers.Layer): (number | null)[] {
  const out = layer.output;
  if (Array.isArray(out)) throw new UserError(`--layer '${layer.name}': the layer has ${out.length} outputs; expected one`);
  return out.shape;
}

/** Which layer output gives the features, and how it is pooled. */
export function resolveFeatureLayer(fm: FeatureModel, requested: string = DEFAULT_LAYER): ResolvedLayer {
  let layer: tf.layers.Layer;
  if (requested === 'gap') {
    const meta = fm.meta;
    if (!meta) throw new UserError(`--layer gap: model '${fm.model.name}' has no CAM-ready head (GAP → Dense or conv → GAP); name a layer with --layer`);
    if (meta.headKind === 'gap-dense') {
      layer = layerByName(fm.model, meta.poolingLayer);
    } else {
      const scoreConv = layerByName(fm.model, meta.featureLayer);
      const before = inboundLayer(scoreConv);
      if (!before) throw new UserError(`--layer gap: the class-score layer '${meta.featureLayer}' has no single input layer; name a layer with --layer`);
      layer = before;
    }
  } else {
    layer = layerByName(fm.model, requested);
  }
  const shape = outputShapeOf(layer);
  if (shape.length === 4) return { requested, layer: layer.name, pooling: 'global-average', dimension: shape[3] as number };
  if (shape.length === 2) return { requested, layer: layer.name, pooling: 'identity', dimension: shape[1] as number };
  throw new UserError(`--layer '${layer.name}': output shape [${shape.join(', ')}] is neither [N, h, w, C] nor [N, D]`);
}

/** A sub-model input → [N, D] features, sharing the model's weights. */
export class FeatureExtractor {
  readonly sub: tf.LayersModel;
  private readonly forward: (images: tf.Tensor4D) => tf.Tensor;
  constructor(readonly fm: FeatureModel, readonly layer: ResolvedLayer) {
    const out = fm.model.getLayer(layer.layer).output as tf.SymbolicTensor;
    this.sub = tf.model({ inputs: fm.model.inputs, outputs: out });
    this.forward = fastPredictor(this.sub);
  }

  /** Features of a preprocessed batch; the caller disposes the result. */
  run(input: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const y = this.forward(input);
      return (this.layer.pooling === 'global-average' ? tf.mean(y, [1, 2]) : y) as tf.Tensor2D;
    });
  }
}

export interface ExtractOptions {
  layer?: string;
  crop?: CropMode;
  batchSize?: number;
  /** Fraction of the CAM maximum kept by the box rule (crop 'cam'; default 0.2, the paper's). */
  camThreshold?: number;
  /** Images decoded at once when decoding on the main thread (no decode workers: GAPCAM_DECODE_WORKERS=0). */
  concurrency?: number;
  /** Input size [h, w]; default meta.inputSize, else the model's input shape. */
  inputSize?: [number, number];
  preprocessing?: ModelMeta['preprocessing'];
  /** Leave out images that fail to decode (listed in the result) instead of stopping at the first one. */
  skipBadImages?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface SkippedImage {
  index: number;
  id: string;
  path: string;
  reason: string;
}

export interface ExtractResult {
  /** count × dimension, rows in the order of `kept`. */
  data: Float32Array;
  count: number;
  /** Indices (into the input records) of the rows, in order: all of them unless bad images were skipped. */
  kept: number[];
  skipped: SkippedImage[];
  dimension: number;
  layer: ResolvedLayer;
  crop: CropMode;
  inputSize: [number, number];
  /** The region each row was computed from (original pixels), undefined for the whole image. */
  regions: (Box | undefined)[];
  /** Crop 'cam': top-1 class of the first (whole-image) pass per row. */
  camClasses?: (number | undefined)[];
  /** Rows that fell back to the whole image (no GT box, or an empty CAM). */
  fallbacks: number;
  seconds: number;
  imagesPerSecond: number;
}

export function modelInputSize(fm: FeatureModel, given?: [number, number]): [number, number] {
  if (given) return given;
  if (fm.meta) return fm.meta.inputSize;
  const shape = fm.model.inputs[0].shape;
  if (shape.length !== 4 || !shape[1] || !shape[2]) {
    throw new UserError(`model '${fm.model.name}': input shape [${shape.join(', ')}] has no fixed height and width; pass an input size`);
  }
  return [shape[1], shape[2]];
}

interface InputBatch {
  /** Indices into the records of the batch's images, in order. */
  indices: number[];
  /** Preprocessed NHWC input; the consumer disposes it. */
  images: tf.Tensor4D;
}

export interface InputOptions {
  batchSize: number;
  inputSize: [number, number];
  preprocessing: ModelMeta['preprocessing'];
  concurrency?: number;
  onBad?: (index: number, err: UserError) => void;
}

/** Model inputs in record order, each image (or its region) read once through the data pipeline
 *  (src/data/pipeline.ts: decode workers, prefetching, bad-image skipping): decoded, cut to its region, resized exactly
 *  to the input (sharp extract → lanczos3 'fill' resize) and preprocessed. No decode cache: features read each image
 *  once. */
async function* inputBatches(records: ImageRecord[], regions: (Box | undefined)[] | undefined, o: InputOptions): AsyncGenerator<InputBatch> {
  const stream = batches(records, {
    batchSize: o.batchSize,
    transforms: [{ op: 'resize', size: o.inputSize, mode: 'exact' }],
    regions,
    preprocess: o.preprocessing,
    concurrency: o.concurrency,
    skipBadImages: !!o.onBad,
  });
  // The pipeline reports skipped images by file, in record order (no shuffling); records may repeat a file, so each
  // is matched to the next position the stream left out.
  let next = 0, reported = 0;
  const reportUpTo = (end: number) => {
    for (; next < end; next++) {
      const skip = stream.stats.skipped[reported++];
      if (skip?.file !== records[next].path) throw new Error(`feature extraction: image ${next} (${records[next].path}) is missing from the pipeline's batches`);
      o.onBad?.(next, new UserError(skip.reason));
    }
  };
  for await (const b of stream) {
    for (const i of b.indices) {
      reportUpTo(i);
      next = i + 1;
    }
    yield { indices: b.indices, images: b.images };
  }
  reportUpTo(records.length);
}

/** The CAM box (original pixels) of each record's top-1 class — the same box as `gapcam cam` and the library's
 *  camBox (raw map upsampled to the input, the paper's rule); undefined when no part of the map is positive. */
export async function topClassCamBoxes(cam: CamModel, records: ImageRecord[], options: InputOptions & { threshold: number }): Promise<{ boxes: (Box | undefined)[]; classes: (number | undefined)[] }> {
  const boxes: (Box | undefined)[] = new Array(records.length).fill(undefined);
  const classes: (number | undefined)[] = new Array(records.length).fill(undefined);
  for await (const batch of inputBatches(records, undefined, options)) {
    let res: ReturnType<typeof classActivationMaps> | undefined;
    try {
      res = classActivationMaps(cam, batch.images, topKSelection(1));
      const [, h, w] = res.maps.shape;
      const maps = (await res.maps.data()) as Float32Array;
      batch.indices.forEach((idx, i) => {
        const raw = { data: maps.subarray(i * h * w, (i + 1) * h * w), width: w, height: h };
        boxes[idx] = camBox(raw, options.inputSize, records[idx], { fraction: options.threshold });
        classes[idx] = res!.classIds[i][0];
      });
    } finally {
      batch.images.dispose();
      res?.logits.dispose();
      res?.maps.dispose();
    }
  }
  return { boxes, classes };
}

/** Features of every record, in record order, streamed through the model in batches. */
export async function extractFeatures(fm: FeatureModel, records: ImageRecord[], options: ExtractOptions = {}): Promise<ExtractResult> {
  const t0 = performance.now();
  const crop = options.crop ?? 'full';
  if (!(CROP_MODES as readonly string[]).includes(crop)) throw new UserError(`--crop: expected one of ${CROP_MODES.join(', ')}, found '${crop}'`);
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new UserError(`--batch-size: expected a positive integer, found ${batchSize}`);
  const layer = resolveFeatureLayer(fm, options.layer ?? DEFAULT_LAYER);
  const inputSize = modelInputSize(fm, options.inputSize);
  const preprocessing = options.preprocessing ?? fm.meta?.preprocessing ?? 'unit';
  const n = records.length;
  let regions: (Box | undefined)[] = new Array(n).fill(undefined);
  let camClasses: (number | undefined)[] | undefined;
  let fallbacks = 0;
  const bad = new Map<number, string>();
  const onBad = options.skipBadImages ? (i: number, err: UserError) => void bad.set(i, err.message) : undefined;
  if (crop === 'gt-box') {
    regions = records.map((r) => unionBox(r.boxes));
    fallbacks = regions.filter((r) => !r).length;
    if (n > 0 && fallbacks === n) throw new UserError(`--crop gt-box: none of the ${n} images has a ground-truth box; use --crop full or --crop cam`);
  } else if (crop === 'cam') {
    if (!fm.meta) throw new UserError(`--crop cam: model '${fm.model.name}' has no CAM-ready head (GAP → Dense or conv → GAP)`);
    const threshold = options.camThreshold ?? DEFAULT_CAM_THRESHOLD;
    const found = await topClassCamBoxes({ model: fm.model, meta: fm.meta }, records, { batchSize, inputSize, threshold, concurrency: options.concurrency, preprocessing, onBad });
    regions = found.boxes;
    camClasses = found.classes;
    fallbacks = regions.filter((r, i) => !r && !bad.has(i)).length;
    // Images that failed in the first pass are not read again.
    if (bad.size) regions = regions.map((r, i) => (bad.has(i) ? undefined : r));
  }
  const extractor = new FeatureExtractor(fm, layer);
  const data = new Float32Array(n * layer.dimension);
  let done = 0;
  const todo = bad.size ? records.map((_, i) => i).filter((i) => !bad.has(i)) : undefined;
  const recs = todo ? todo.map((i) => records[i]) : records;
  const regs = todo ? todo.map((i) => regions[i]) : regions;
  const onBadSub = onBad && ((i: number, err: UserError) => onBad(todo ? todo[i] : i, err));
  for await (const batch of inputBatches(recs, regs, { batchSize, inputSize, preprocessing, concurrency: options.concurrency, onBad: onBadSub })) {
    let feats: tf.Tensor2D | undefined;
    try {
      feats = extractor.run(batch.images);
      const values = (await feats.data()) as Float32Array;
      batch.indices.forEach((j, i) => {
        const idx = todo ? todo[j] : j;
        data.set(values.subarray(i * layer.dimension, (i + 1) * layer.dimension), idx * layer.dimension);
      });
    } finally {
      batch.images.dispose();
      feats?.dispose();
    }
    done += batch.indices.length;
    options.onProgress?.(done, n);
  }
  const seconds = (performance.now() - t0) / 1000;
  const kept = records.map((_, i) => i).filter((i) => !bad.has(i));
  const skipped: SkippedImage[] = [...bad.entries()].sort((a, b) => a[0] - b[0]).map(([index, reason]) => ({ index, id: records[index].id, path: records[index].path, reason }));
  const rows = kept.length === n ? data : new Float32Array(kept.length * layer.dimension);
  if (rows !== data) kept.forEach((i, r) => rows.set(data.subarray(i * layer.dimension, (i + 1) * layer.dimension), r * layer.dimension));
  return {
    data: rows,
    count: kept.length,
    kept,
    skipped,
    dimension: layer.dimension,
    layer,
    crop,
    inputSize,
    regions: kept.map((i) => regions[i]),
    camClasses: camClasses && kept.map((i) => camClasses![i]),
    fallbacks,
    seconds,
    imagesPerSecond: seconds > 0 ? n / seconds : 0,
  };
}
