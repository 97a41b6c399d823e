// Faithfulness of saliency maps: does the model's confidence follow the map?
//   Average drop / increase in confidence (Chattopadhyay et al. 2018, Grad-CAM++ §5): the input is multiplied
//   pixel-wise by the map (normalised to [0, 1] at input size); with Y the class probability on the input and O
//   on the masked input, average drop = mean(max(0, Y − O) / Y) · 100, increase = % of images with O > Y.
//   Deletion / insertion (Petsiuk et al. 2018, RISE): pixels are removed (set to the baseline) or inserted (into a
//   blurred copy) in the map's order, hottest first, in `steps` equal steps; the class probability after each step
//   gives a curve over the fraction of pixels [0, 1] whose area (trapezoid rule) is the AUC. Lower deletion AUC and
//   higher insertion AUC mean a more faithful map.
// Masking happens in the model's input space (after preprocessing), so the baseline 0 is black for 'unit' inputs
// and the ImageNet mean colour for 'caffe'/'torch' inputs; the insertion start image is a Gaussian blur
// (σ = 5 px, 11 × 11 kernel, as RISE) of the input.
import * as tf from '@tensorflow/tfjs';

export interface FaithfulnessOptions {
  /** Deletion/insertion steps (default 32: the curve has steps + 1 points). */
  steps?: number;
  /** Images per forward pass (default 16). */
  batchSize?: number;
  /** Gaussian blur σ in pixels for the insertion start image (default 5). */
  blurSigma?: number;
}

export interface FaithfulnessResult {
  images: number;
  averageDrop: number;
  increaseInConfidence: number;
  deletionAuc: number;
  insertionAuc: number;
  /** Mean curves over images, steps + 1 points each, at pixel fractions i / steps. */
  deletionCurve: number[];
  insertionCurve: number[];
}

/** Class probabilities [N, classes] of a batch (a forward pass). */
export type ProbabilityFn = (x: tf.Tensor4D) => tf.Tensor2D;

/** Area under a curve sampled at x = i / (n − 1), trapezoid rule. */
export function curveAuc(curve: number[]): number {
  if (curve.length < 2) return curve[0] ?? 0;
  let s = 0;
  for (let i = 1; i < curve.length; i++) s += (curve[i - 1] + curve[i]) / 2;
  return s / (curve.length - 1);
}

/** Pixel indices sorted by decreasing map value (ties: lower index first). */
export function orderByMap(map: Float32Array): Uint32Array {
  const idx = Array.from({ length: map.length }, (_, i) => i);
  idx.sort((a, b) => map[b] - map[a] || a - b);
  return Uint32Array.from(idx);
}

/** Masks [steps + 1, H, W, 1]: 1 where a pixel is already taken (the first round(i · HW / steps) of `order`). */
export function progressiveMasks(order: Uint32Array, height: number, width: number, steps: number): Float32Array {
  const hw = height * width;
  const masks = new Float32Array((steps + 1) * hw);
  for (let s = 0; s <= steps; s++) {
    const count = Math.round((s * hw) / steps);
    const base = s * hw;
    for (let j = 0; j < count; j++) masks[base + order[j]] = 1;
  }
  return masks;
}

function gaussianKernel(sigma: number, size: number): tf.Tensor4D {
  const half = (size - 1) / 2;
  const k1 = Array.from({ length: size }, (_, i) => Math.exp(-((i - half) ** 2) / (2 * sigma * sigma)));
  const sum = k1.reduce((a, b) => a + b, 0);
  const k = k1.map((v) => v / sum);
  const data: number[] = [];
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) data.push(k[y] * k[x]);
  return tf.tensor4d(data, [size, size, 3, 1]);
}

/** Gaussian blur of a [1, H, W, 3] image (reflect-free: edges see zero padding normalised away). */
export function blurImage(x: tf.Tensor4D, sigma = 5, size = 11): tf.Tensor4D {
  return tf.tidy(() => {
    const k = gaussianKernel(sigma, size);
    const blurred = tf.depthwiseConv2d(x, k, 1, 'same');
    const ones = tf.onesLike(x.slice([0, 0, 0, 0], [1, -1, -1, -1]));
    const weight = tf.depthwiseConv2d(ones, k, 1, 'same');
    return tf.div(blurred, weight) as tf.Tensor4D;
  });
}

/** Accumulates the metrics image by image (one map per image, for one class). */
export class FaithfulnessAccumulator {
  private n = 0;
  private drop = 0;
  private increase = 0;
  private deletion: number[] = [];
  private insertion: number[] = [];
  private readonly steps: number;
  private readonly batchSize: number;

  constructor(private readonly probabilities: ProbabilityFn, readonly options: FaithfulnessOptions = {}) {
    this.steps = Math.max(1, options.steps ?? 32);
    this.batchSize = Math.max(1, options.batchSize ?? 16);
    this.deletion = new Array(this.steps + 1).fill(0);
    this.insertion = new Array(this.steps + 1).fill(0);
  }

  private classProbs(batch: tf.Tensor4D, classId: number): number[] {
    const out: number[] = [];
    const n = batch.shape[0];
    for (let s = 0; s < n; s += this.batchSize) {
      const p = tf.tidy(() => {
        const part = batch.slice([s, 0, 0, 0], [Math.min(this.batchSize, n - s), -1, -1, -1]);
        return this.probabilities(part).slice([0, classId], [-1, 1]).reshape([-1]);
      });
      out.push(...(p.dataSync() as Float32Array));
      p.dispose();
    }
    return out;
  }

  /** One image [1, H, W, 3] (model input space), its map (H·W values in [0, 1]) and the class it explains. */
  add(input: tf.Tensor4D, map: Float32Array, classId: number): { drop: number; deletionAuc: number; insertionAuc: number } {
    const [, h, w] = input.shape;
    if (map.length !== h * w) throw new Error(`faithfulness: map has ${map.length} values for a ${w}×${h} input`);
    const masks = progressiveMasks(orderByMap(map), h, w, this.steps);
    const [[y, o], del, ins] = tf.tidy(() => {
      const m = tf.tensor4d(map, [1, h, w, 1]);
      const pair = tf.concat([input, tf.mul(input, m)]) as tf.Tensor4D;
      const taken = tf.tensor4d(masks, [this.steps + 1, h, w, 1]);
      const deleted = tf.mul(input, tf.sub(1, taken)) as tf.Tensor4D;
      const blurred = blurImage(input, this.options.blurSigma ?? 5);
      const inserted = tf.add(tf.mul(blurred, tf.sub(1, taken)), tf.mul(input, taken)) as tf.Tensor4D;
      return [this.classProbs(pair, classId), this.classProbs(deleted, classId), this.classProbs(inserted, classId)];
    });
    const drop = y > 0 ? Math.max(0, y - o) / y : 0;
    this.drop += drop;
    if (o > y) this.increase += 1;
    del.forEach((v, i) => (this.deletion[i] += v));
    ins.forEach((v, i) => (this.insertion[i] += v));
    this.n += 1;
    return { drop, deletionAuc: curveAuc(del), insertionAuc: curveAuc(ins) };
  }

  /** The sums so far (shards of a sharded `gapcam cam` run merge by adding them). */
  state(): FaithfulnessState {
    return { n: this.n, drop: this.drop, increase: this.increase, deletion: this.deletion.slice(), insertion: this.insertion.slice() };
  }

  result(): FaithfulnessResult {
    return faithfulnessResult(this.state());
  }
}

/** The sums of a FaithfulnessAccumulator: images, confidence drop and increase, deletion and insertion curves. */
export interface FaithfulnessState {
  n: number;
  drop: number;
  increase: number;
  deletion: number[];
  insertion: number[];
}

/** Adds the sums of several accumulators (same number of steps). */
export function sumFaithfulness(states: readonly FaithfulnessState[]): FaithfulnessState {
  const add = (a: number[], b: number[]): number[] => a.map((v, i) => v + b[i]);
  return states.slice(1).reduce((t, s) => ({ n: t.n + s.n, drop: t.drop + s.drop, increase: t.increase + s.increase, deletion: add(t.deletion, s.deletion), insertion: add(t.insertion, s.insertion) }), states[0]);
}

/** The metrics of accumulated sums. */
export function faithfulnessResult(state: FaithfulnessState): FaithfulnessResult {
  const n = Math.max(1, state.n);
  const deletionCurve = state.deletion.map((v) => v / n);
  const insertionCurve = state.insertion.map((v) => v / n);
  return {
    images: state.n,
    averageDrop: (100 * state.drop) / n,
    increaseInConfidence: (100 * state.increase) / n,
    deletionAuc: curveAuc(deletionCurve),
    insertionAuc: curveAuc(insertionCurve),
    deletionCurve,
    insertionCurve,
  };
}
