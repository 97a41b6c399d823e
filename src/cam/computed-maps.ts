// From one CAM method pass to the numbers `gapcam cam` writes and the page of `gapcam model export --web` shows:
// class probabilities, the raw maps at the layer's resolution, the raw and min-max normalised maps upsampled to the
// model input (half-pixel bilinear); the CAM box is box.ts's. Browser-safe (TensorFlow.js and plain JS, no Node
// imports): both import this file, so the page's maps and scores are the CLI's by construction.
import * as tf from '@tensorflow/tfjs';
import type { CamMethod } from './methods/base.js';
import type { ClassSelection } from './class-maps.js';
import { normalizeMaps, upsampleMaps } from './class-maps.js';

export interface ComputedMaps {
  method: CamMethod;
  classIds: number[][];
  /** [N][numClasses] softmax of the pre-softmax scores, and the scores. */
  probs: number[][];
  logits: number[][];
  /** [N, h, w, K] raw maps at the layer's resolution. */
  rawMaps: Float32Array;
  /** [N, H, W, K] raw maps upsampled to the input size, and the same min-max normalised per map. */
  inputRaw: Float32Array;
  inputMaps: Float32Array;
  h: number;
  w: number;
  k: number;
  inputSize: [number, number];
}

/** Runs `method` on the batch `x` for the classes `select` chooses and reads everything back. */
export function computeMaps(method: CamMethod, x: tf.Tensor4D, select: ClassSelection, inputSize: [number, number]): ComputedMaps {
  const res = method.compute(x, select);
  const probs = tf.tidy(() => tf.softmax(res.logits));
  const p = probs.arraySync() as number[][];
  const l = res.logits.arraySync() as number[][];
  const [, h, w, k] = res.maps.shape;
  const rawMaps = res.maps.dataSync() as Float32Array;
  const upRaw = upsampleMaps(res.maps, inputSize);
  const inputMaps = normalizeMaps(upRaw);
  const inputRaw = upRaw.dataSync() as Float32Array;
  const inputMapData = inputMaps.dataSync() as Float32Array;
  tf.dispose([res.logits, res.maps, probs, inputMaps, upRaw]);
  return { method, classIds: res.classIds, probs: p, logits: l, rawMaps, inputRaw, inputMaps: inputMapData, h, w, k, inputSize };
}

export interface OneMap {
  /** [h, w] raw map at the layer's resolution. */
  raw: Float32Array;
  /** [H, W] raw map at the input size, and the same normalised to [0, 1]. */
  rawAtInput: Float32Array;
  atInput: Float32Array;
}

/** The maps of image `i`'s `j`-th requested class, row-major. */
export function mapOf(c: ComputedMaps, i: number, j: number): OneMap {
  const { h, w, k } = c;
  const [H, W] = c.inputSize;
  const raw = new Float32Array(h * w);
  for (let p = 0; p < h * w; p++) raw[p] = c.rawMaps[(i * h * w + p) * k + j];
  const rawAtInput = new Float32Array(H * W);
  const atInput = new Float32Array(H * W);
  for (let p = 0; p < H * W; p++) {
    rawAtInput[p] = c.inputRaw[(i * H * W + p) * k + j];
    atInput[p] = c.inputMaps[(i * H * W + p) * k + j];
  }
  return { raw, rawAtInput, atInput };
}
