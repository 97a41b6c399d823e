// Input preprocessing modes, as a pure function on pixel arrays and as a tf op. Input is RGB, 0..255, HWC/NHWC.
//   caffe: RGB → BGR, then subtract [103.939, 116.779, 123.68] (BGR order) — Keras VGG16 `preprocess_input`.
//   torch: x / 255, then (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225] per RGB channel (ImageNet mean/std).
//   unit:  x / 255, RGB, in [0, 1].
import * as tf from '@tensorflow/tfjs';
import type { PreprocessMode } from './types.js';
import { UserError } from '../errors.js';

export const PREPROCESS_MODES: readonly PreprocessMode[] = ['caffe', 'torch', 'unit'];

/** Per-mode constants: output channel c = (input channel order[c] * scale - mean[c]) / std[c]. */
export interface PreprocessSpec {
  /** Which RGB input channel feeds each output channel. */
  order: [number, number, number];
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
  describe: string;
}

export const PREPROCESS_SPECS: Record<PreprocessMode, PreprocessSpec> = {
  caffe: {
    order: [2, 1, 0],
    scale: 1,
    mean: [103.939, 116.779, 123.68],
    std: [1, 1, 1],
    describe: 'BGR, 0..255 minus the ImageNet mean [103.939, 116.779, 123.68] (Keras VGG16)',
  },
  torch: {
    order: [0, 1, 2],
    scale: 1 / 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    describe: 'RGB, x/255 normalised by ImageNet mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]',
  },
  unit: { order: [0, 1, 2], scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1], describe: 'RGB scaled to [0, 1]' },
};

export function parsePreprocessMode(name: string): PreprocessMode {
  if ((PREPROCESS_MODES as readonly string[]).includes(name)) return name as PreprocessMode;
  throw new UserError(`unknown preprocessing mode '${name}': expected one of ${PREPROCESS_MODES.join(', ')}`);
}

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
  const spec = PREPROCESS_SPECS[mode];
  const dst = out ?? new Float32Array(pixels.length);
  const [o0, o1, o2] = spec.order;
  const a0 = spec.scale / spec.std[0], a1 = spec.scale / spec.std[1], a2 = spec.scale / spec.std[2];
  const b0 = spec.mean[0] / spec.std[0], b1 = spec.mean[1] / spec.std[1], b2 = spec.mean[2] / spec.std[2];
  for (let i = 0; i < pixels.length; i += 3) {
    dst[i] = pixels[i + o0] * a0 - b0;
    dst[i + 1] = pixels[i + o1] * a1 - b1;
    dst[i + 2] = pixels[i + o2] * a2 - b2;
  }
  return dst;
}

/** The inverse of preprocessPixels: back to RGB 0..255 (clamped, rounded) for display. */
export function deprocessPixels(values: Float32Array, mode: PreprocessMode): Uint8Array {
  const spec = PREPROCESS_SPECS[mode];
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      const v = (values[i + c] * spec.std[c] + spec.mean[c]) / spec.scale;
      out[i + spec.order[c]] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
  return out;
}

/** The same preprocessing as a tf op on an RGB 0..255 tensor with channels last (any rank ≥ 1). */
export function preprocessTensor<T extends tf.Tensor>(rgb: T, mode: PreprocessMode): T {
  const spec = PREPROCESS_SPECS[mode];
  return tf.tidy(() => {
    let x = rgb.toFloat() as tf.Tensor;
    if (spec.order[0] !== 0) x = tf.reverse(x, -1);
    const a = tf.tensor1d(spec.std.map((s) => spec.scale / s));
    const b = tf.tensor1d(spec.mean.map((m, c) => m / spec.std[c]));
    return x.mul(a).sub(b) as T;
  });
}
