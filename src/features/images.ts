// Images for feature extraction: a record's image — whole, or a region of it in original pixels — resized to the
// model input and preprocessed, loaded in bounded-concurrency batches one batch ahead of the model.
// Decoding goes through src/data/image.ts (sharp: EXIF orientation, alpha, grey/CMYK/16-bit → 8-bit RGB), so a
// region given in original-image pixels (after EXIF orientation, as ImageRecord boxes are) is cut exactly there.
import * as tf from '@tensorflow/tfjs';
import type { Box, ImageRecord, PreprocessMode } from '../data/types.js';
import { normalizedSharp, toRawRgb } from '../data/image.js';
import { preprocessPixels } from '../data/preprocess.js';
import { mapConcurrent } from '../data/util.js';
import { UserError } from '../errors.js';

/** Whole-pixel region [left, top, width, height] covering an inclusive (possibly fractional) box, clipped to the
 *  image; at least 1×1. */
export function boxRegion(box: Box, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
  const x0 = clip(Math.floor(box[0]), width - 1);
  const y0 = clip(Math.floor(box[1]), height - 1);
  const x1 = clip(Math.ceil(box[2]), width - 1);
  const y1 = clip(Math.ceil(box[3]), height - 1);
  return { left: x0, top: y0, width: Math.max(x1, x0) - x0 + 1, height: Math.max(y1, y0) - y0 + 1 };
}

/** The smallest box holding all `boxes` (undefined for none). */
export function unionBox(boxes: readonly Box[]): Box | undefined {
  if (!boxes.length) return undefined;
  return boxes.reduce<Box>((u, b) => [Math.min(u[0], b[0]), Math.min(u[1], b[1]), Math.max(u[2], b[2]), Math.max(u[3], b[3])], [...boxes[0]] as Box);
}

/** RGB 8-bit pixels of `record`'s image (or of `region` of it) resized (stretched) to `size` = [height, width]. */
export async function loadResizedRgb(record: Pick<ImageRecord, 'path' | 'width' | 'height'>, size: [number, number], region?: Box): Promise<Uint8Array> {
  let pipeline = normalizedSharp(record.path);
  if (region) pipeline = pipeline.extract(boxRegion(region, record.width, record.height));
  pipeline = pipeline.resize(size[1], size[0], { fit: 'fill' });
  const img = await toRawRgb(record.path, pipeline);
  return img.data;
}

export interface BatchSource {
  records: ImageRecord[];
  /** Region (original pixels) per record, or undefined for the whole image. */
  regions?: (Box | undefined)[];
  size: [number, number];
  preprocessing: PreprocessMode;
  batchSize: number;
  /** Images decoded at once (default 8). */
  concurrency?: number;
  /** When given, an image that fails to decode (a UserError naming it) is reported here and left as zeros in its
   *  batch instead of stopping the run; the caller drops its row. */
  onBad?: (index: number, err: UserError) => void;
}

export interface PixelBatch {
  /** Index of the batch's first record. */
  start: number;
  count: number;
  /** Preprocessed NHWC values. */
  values: Float32Array;
}

async function loadBatch(src: BatchSource, start: number): Promise<PixelBatch> {
  const [h, w] = src.size;
  const per = h * w * 3;
  const recs = src.records.slice(start, start + src.batchSize);
  const values = new Float32Array(recs.length * per);
  await mapConcurrent(recs, src.concurrency ?? 8, async (rec, i) => {
    let rgb: Uint8Array;
    try {
      rgb = await loadResizedRgb(rec, src.size, src.regions?.[start + i]);
    } catch (err) {
      if (!src.onBad || !(err instanceof UserError)) throw err;
      src.onBad(start + i, err);
      return;
    }
    preprocessPixels(rgb, src.preprocessing, values.subarray(i * per, (i + 1) * per));
  });
  return { start, count: recs.length, values };
}

/** Batches in record order; the next batch is already decoding while the caller runs the model on this one. */
export async function* pixelBatches(src: BatchSource): AsyncGenerator<PixelBatch> {
  const n = src.records.length;
  let pending: Promise<PixelBatch> | undefined = n > 0 ? loadBatch(src, 0) : undefined;
  for (let start = 0; start < n; start += src.batchSize) {
    const batch = await pending!;
    const next = start + src.batchSize;
    pending = next < n ? loadBatch(src, next) : undefined;
    // Keep a rejected prefetch from surfacing as an unhandled rejection if the consumer stops early.
    pending?.catch(() => undefined);
    yield batch;
  }
}

export function batchTensor(batch: PixelBatch, size: [number, number]): tf.Tensor4D {
  return tf.tensor4d(batch.values, [batch.count, size[0], size[1], 3]);
}
