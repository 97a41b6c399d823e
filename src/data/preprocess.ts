// Input preprocessing, as a pure function on pixel arrays and as a tf op. Input is RGB, 0..255, HWC/NHWC.
//   caffe: RGB → BGR, then subtract [103.939, 116.779, 123.68] (BGR order) — Keras VGG16/ResNet50 `preprocess_input`.
//   torch: x / 255, then (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225] per RGB channel (Keras DenseNet, torchvision).
//   tf:    x / 127.5 - 1, RGB, in [-1, 1] — Keras MobileNet/MobileNetV2/Inception/Xception/ResNetV2 `preprocess_input`.
//   unit:  x / 255, RGB, in [0, 1].
//   custom {mean, std, channelOrder, range}: reorder, scale to the range, (x - mean) / std.
// Every mode is computed as Keras' imagenet_utils does it on float32 arrays — divide, subtract, divide, each step
// rounded to float32 — so the values match Keras' preprocess_input bit for bit (test/data/preprocess.test.ts).
import * as tf from '@tensorflow/tfjs';
import type { PreprocessMode } from './types.js';
import { preprocessSpec } from './preprocess-modes.js';

export { PREPROCESS_MODES, PREPROCESS_SPECS, preprocessSpec, preprocessingProblem, describePreprocessing, parsePreprocessMode,
  type PreprocessSpec } from './preprocess-modes.js';

/**
 * Preprocesses RGB 0..255 pixels (HWC or NHWC, channels last, length a multiple of 3) into a new Float32Array,
 * or into `out` (same length) when given.
 */
export function preprocessPixels(
  pixels: Uint8Array | Float32Array | Uint8ClampedArray,
  mode: PreprocessMode,
  out?: Float32Array,
): Float32Array {
  if (pixels.length % 3 !== 0) throw new Error(`preprocessPixels: length ${pixels.length} is not a multiple of 3`);
  const spec = preprocessSpec(mode);
  const dst = out ?? new Float32Array(pixels.length);
  const f = Math.fround;
  const d = spec.divisor;
  const m = spec.mean.map(f);
  const s = spec.std.map(f);
  // A lookup table per channel when the input is 8-bit (every possible value computed once, Keras' rounding).
  if (!(pixels instanceof Float32Array)) {
    const lut = [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, x) => step(x, c)));
    const [l0, l1, l2] = lut;
    const [o0, o1, o2] = spec.order;
    for (let i = 0; i < pixels.length; i += 3) {
      dst[i] = l0[pixels[i + o0]];
      dst[i + 1] = l1[pixels[i + o1]];
      dst[i + 2] = l2[pixels[i + o2]];
    }
    return dst;
  }
  for (let i = 0; i < pixels.length; i += 3) {
    for (let c = 0; c < 3; c++) dst[i + c] = step(pixels[i + spec.order[c]], c);
  }
  return dst;

  function step(x: number, c: number): number {
    let v = d === 1 ? f(x) : f(f(x) / d);
    v = f(v - m[c]);
    return s[c] === 1 ? v : f(v / s[c]);
  }
}

/** The inverse of preprocessPixels: back to RGB 0..255 (clamped, rounded) for display. */
export function deprocessPixels(values: Float32Array, mode: PreprocessMode): Uint8Array {
  const spec = preprocessSpec(mode);
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const v = (values[i + c] * spec.std[c] + spec.mean[c]) * spec.divisor;
      out[i + spec.order[c]] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return out;
}

/** The same preprocessing as a tf op on an RGB 0..255 tensor with channels last (any rank ≥ 1). */
export function preprocessTensor<T extends tf.Tensor>(rgb: T, mode: PreprocessMode): T {
  const spec = preprocessSpec(mode);
  return tf.tidy(() => {
    let x = rgb.toFloat() as tf.Tensor;
    if (spec.order[0] !== 0) x = tf.reverse(x, -1);
    if (spec.divisor !== 1) x = tf.div(x, spec.divisor);
    x = tf.sub(x, tf.tensor1d(spec.mean));
    if (spec.std.some((s) => s !== 1)) x = tf.div(x, tf.tensor1d(spec.std));
    return x as T;
  });
}
