// Tiny seeded models for the CAM tests, built in-test (nothing downloads).
import * as tf from '@tensorflow/tfjs';
import type { CamModel } from '../../src/models/types.js';

export interface TinyOptions {
  size?: number;
  channels?: number;
  classes?: number;
  softmax?: boolean;
  seed?: number;
}

/** input [s, s, 3] → conv3x3 'conv1' (relu) → conv3x3 'feat' (relu) → GAP 'gap' → Dense 'fc'. */
export function tinyGapDense(o: TinyOptions = {}): CamModel {
  const s = o.size ?? 12;
  const seed = o.seed ?? 1;
  const input = tf.input({ shape: [s, s, 3], name: 'image' });
  const c1 = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: tf.initializers.glorotUniform({ seed }), biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: seed + 10 }) }).apply(input) as tf.SymbolicTensor;
  const p = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }).apply(c1) as tf.SymbolicTensor;
  const f = tf.layers.conv2d({ filters: o.channels ?? 5, kernelSize: 3, padding: 'same', activation: 'relu', name: 'feat', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: tf.initializers.randomUniform({ minval: 0, maxval: 0.2, seed: seed + 11 }) }).apply(p) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(f) as tf.SymbolicTensor;
  const d = tf.layers.dense({ units: o.classes ?? 4, activation: o.softmax ? 'softmax' : 'linear', name: 'fc', kernelInitializer: tf.initializers.randomNormal({ stddev: 1, seed: seed + 2 }), biasInitializer: tf.initializers.randomUniform({ minval: -1, maxval: 1, seed: seed + 3 }) }).apply(g) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: d, name: 'tiny_gap_dense' });
  return {
    model,
    meta: {
      classNames: Array.from({ length: o.classes ?? 4 }, (_, i) => `class${i}`),
      preprocessing: 'unit', inputSize: [s, s], headKind: 'gap-dense',
      featureLayer: 'feat', poolingLayer: 'gap', classifierLayer: 'fc', outputIsSoftmax: !!o.softmax,
    },
  };
}

/** input → conv 'conv1' (relu) → 1×1 conv 'cls' (linear, one channel per class) → GAP 'gap' (darknet-tiny style). */
export function tinyConvGap(o: TinyOptions = {}): CamModel {
  const s = o.size ?? 12;
  const seed = o.seed ?? 5;
  const classes = o.classes ?? 4;
  const input = tf.input({ shape: [s, s, 3], name: 'image' });
  const c1 = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: tf.initializers.glorotUniform({ seed }) }).apply(input) as tf.SymbolicTensor;
  const cls = tf.layers.conv2d({ filters: classes, kernelSize: 1, activation: 'linear', name: 'cls', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: seed + 2 }) }).apply(c1) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(cls) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: g, name: 'tiny_conv_gap' });
  return {
    model,
    meta: {
      classNames: Array.from({ length: classes }, (_, i) => `class${i}`),
      preprocessing: 'unit', inputSize: [s, s], headKind: 'conv-gap',
      featureLayer: 'cls', poolingLayer: 'gap', outputIsSoftmax: false,
    },
  };
}

/** A seeded batch of images in [0, 1]. */
export function seededImages(n: number, size: number, seed = 7): tf.Tensor4D {
  return tf.randomUniform([n, size, size, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/** Reads a layer's output for `x` through a separate single-output model (not the code path under test). */
export function layerOutput(model: tf.LayersModel, name: string, x: tf.Tensor4D): number[][][][] {
  const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer(name).output as tf.SymbolicTensor });
  const t = sub.predict(x) as tf.Tensor4D;
  const a = t.arraySync();
  t.dispose();
  return a;
}

/** input [s, s, 3] → conv3x3 'conv1' (relu, 4) → conv3x3 'feat' (relu, C) → 1×1 conv 'mix' (tanh, 6) → GAP 'gap' →
 *  Dense 'fc' (softmax). A smooth, non-linear head after 'feat', so gradient methods have non-trivial gradients
 *  that a test can recompute in plain JS (no pooling: 'feat' has the input's resolution). */
export function tinyDeepHead(o: TinyOptions = {}): tf.LayersModel {
  const s = o.size ?? 8;
  const seed = o.seed ?? 21;
  const input = tf.input({ shape: [s, s, 3], name: 'image' });
  const c1 = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: tf.initializers.glorotUniform({ seed }), biasInitializer: tf.initializers.constant({ value: 0.05 }) }).apply(input) as tf.SymbolicTensor;
  const f = tf.layers.conv2d({ filters: o.channels ?? 5, kernelSize: 3, padding: 'same', activation: 'relu', name: 'feat', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: tf.initializers.constant({ value: 0.05 }) }).apply(c1) as tf.SymbolicTensor;
  const m = tf.layers.conv2d({ filters: 6, kernelSize: 1, activation: 'tanh', name: 'mix', kernelInitializer: tf.initializers.randomNormal({ stddev: 1.5, seed: seed + 2 }), biasInitializer: tf.initializers.randomUniform({ minval: -0.3, maxval: 0.3, seed: seed + 3 }) }).apply(f) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(m) as tf.SymbolicTensor;
  const d = tf.layers.dense({ units: o.classes ?? 3, activation: 'softmax', name: 'fc', kernelInitializer: tf.initializers.randomNormal({ stddev: 2, seed: seed + 4 }), biasInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: seed + 5 }) }).apply(g) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: d, name: 'tiny_deep_head' });
}
