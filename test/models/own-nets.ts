// Small CNNs of the kinds people bring, built in tfjs with Keras layer names: a residual net and a
// depthwise-separable net (both with BatchNormalization and a non-chain block), and a narrow MobileNetV2 with
// Keras' exact layer and model names (what keras.applications.MobileNetV2 builds, so it is recognised as one).
import * as tf from '@tensorflow/tfjs';
import { saveKerasH5 } from '../../src/models/keras-h5.js';
import { saveKerasArchive } from '../../src/models/keras-archive.js';

/** Saves as a Keras 3 .keras archive or (any other name) a legacy whole-model .h5. */
export async function saveAs(model: tf.LayersModel, file: string): Promise<void> {
  if (file.endsWith('.keras')) await saveKerasArchive(model, file);
  else await saveKerasH5(model, file, { includeModelConfig: true });
}

type T = tf.SymbolicTensor;
const ap = (layer: tf.layers.Layer, x: T | T[]) => layer.apply(x) as T;

/** Every weight redrawn from a seeded generator (BN variances positive), so saved files carry non-trivial values. */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of model.layers) {
    const ws = layer.weights;
    if (!ws.length) continue;
    const fresh = ws.map((w) => {
      const isVar = /moving_variance/.test(w.originalName);
      const isGamma = /gamma/.test(w.originalName);
      const fanIn = w.shape.length > 1 ? w.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
      const r = tf.randomUniform(w.shape, -1, 1, 'float32', s++);
      return tf.tidy(() => (isVar ? r.abs().add(0.5) : isGamma ? r.mul(0.2).add(1) : r.mul(Math.sqrt(3 / fanIn))));
    });
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
}

/** conv-BN-ReLU stem, one residual block (two conv-BN, Add, ReLU), a strided conv-BN-ReLU 'features' map, then a
 *  GAP → Dense softmax top. 32×32 input → 16×16×16 features. */
export function residualNet(seed = 1): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3], name: 'input_1' });
  let x = ap(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', useBias: false, name: 'stem_conv' }), input);
  x = ap(tf.layers.batchNormalization({ epsilon: 1.001e-5, name: 'stem_bn' }), x);
  const stem = ap(tf.layers.activation({ activation: 'relu', name: 'stem_relu' }), x);
  x = ap(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'res_conv1' }), stem);
  x = ap(tf.layers.batchNormalization({ name: 'res_bn1' }), x);
  x = ap(tf.layers.activation({ activation: 'relu', name: 'res_relu1' }), x);
  x = ap(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'res_conv2' }), x);
  x = ap(tf.layers.batchNormalization({ name: 'res_bn2' }), x);
  x = ap(tf.layers.add({ name: 'res_add' }), [stem, x]);
  x = ap(tf.layers.activation({ activation: 'relu', name: 'res_out' }), x);
  x = ap(tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'down_conv' }), x);
  x = ap(tf.layers.batchNormalization({ name: 'down_bn' }), x);
  x = ap(tf.layers.activation({ activation: 'relu', name: 'features' }), x);
  x = ap(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = ap(tf.layers.dense({ units: 10, activation: 'softmax', name: 'predictions' }), x);
  const m = tf.model({ inputs: input, outputs: x, name: 'tiny_resnet' });
  randomizeWeights(m, seed);
  return m;
}

/** conv-BN-ReLU6 stem (stride 2), a depthwise conv-BN-ReLU6, then two branches concatenated into 'features': a
 *  pointwise conv-BN-ReLU and a SeparableConv2D-BN-ReLU. 32×32 input → 16×16×16 features. */
export function depthwiseNet(seed = 2): tf.LayersModel {
  const input = tf.input({ shape: [32, 32, 3], name: 'input_1' });
  let x = ap(tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'stem_conv' }), input);
  x = ap(tf.layers.batchNormalization({ name: 'stem_bn' }), x);
  x = ap(tf.layers.reLU({ maxValue: 6, name: 'stem_relu' }), x);
  x = ap(tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, name: 'dw_conv' }), x);
  x = ap(tf.layers.batchNormalization({ name: 'dw_bn' }), x);
  const dw = ap(tf.layers.reLU({ maxValue: 6, name: 'dw_relu' }), x);
  let a = ap(tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false, name: 'pw_conv' }), dw);
  a = ap(tf.layers.batchNormalization({ name: 'pw_bn' }), a);
  a = ap(tf.layers.activation({ activation: 'relu', name: 'pw_relu' }), a);
  let b = ap(tf.layers.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'sep_conv' }), dw);
  b = ap(tf.layers.batchNormalization({ name: 'sep_bn' }), b);
  b = ap(tf.layers.activation({ activation: 'relu', name: 'sep_relu' }), b);
  x = ap(tf.layers.concatenate({ name: 'features' }), [a, b]);
  x = ap(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x);
  x = ap(tf.layers.dense({ units: 10, activation: 'softmax', name: 'predictions' }), x);
  const m = tf.model({ inputs: input, outputs: x, name: 'tiny_dwnet' });
  randomizeWeights(m, seed);
  return m;
}

function makeDivisible(v: number, divisor = 8): number {
  const n = Math.max(divisor, Math.floor((v + divisor / 2) / divisor) * divisor);
  return n < 0.9 * v ? n + divisor : n;
}

/** keras.applications.MobileNetV2(alpha, input_shape=(size, size, 3), weights=None, classes) in tfjs, with Keras'
 *  layer names and model name `mobilenetv2_<alpha>_<size>` (random weights). */
export function mobileNetV2(alpha = 0.35, size = 64, classes = 3): tf.LayersModel {
  const bn = (name: string) => tf.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.999, name });
  const input = tf.input({ shape: [size, size, 3], name: 'input_layer' });
  const first = makeDivisible(32 * alpha);
  let x = ap(tf.layers.conv2d({ filters: first, kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'Conv1' }), input);
  x = ap(bn('bn_Conv1'), x);
  x = ap(tf.layers.reLU({ maxValue: 6, name: 'Conv1_relu' }), x);
  let inC = first;
  let block = 0;
  const invRes = (filters: number, stride: number, expansion: number) => {
    const prefix = block ? `block_${block}_` : 'expanded_conv_';
    const pointwise = makeDivisible(Math.floor(filters * alpha));
    const inputs = x;
    let h = x;
    if (block) {
      h = ap(tf.layers.conv2d({ filters: expansion * inC, kernelSize: 1, padding: 'same', useBias: false, name: `${prefix}expand` }), h);
      h = ap(bn(`${prefix}expand_BN`), h);
      h = ap(tf.layers.reLU({ maxValue: 6, name: `${prefix}expand_relu` }), h);
    }
    if (stride === 2) h = ap(tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: `${prefix}pad` }), h);
    h = ap(tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, useBias: false, padding: stride === 1 ? 'same' : 'valid', name: `${prefix}depthwise` }), h);
    h = ap(bn(`${prefix}depthwise_BN`), h);
    h = ap(tf.layers.reLU({ maxValue: 6, name: `${prefix}depthwise_relu` }), h);
    h = ap(tf.layers.conv2d({ filters: pointwise, kernelSize: 1, padding: 'same', useBias: false, name: `${prefix}project` }), h);
    h = ap(bn(`${prefix}project_BN`), h);
    if (inC === pointwise && stride === 1) h = ap(tf.layers.add({ name: `${prefix}add` }), [inputs, h]);
    inC = pointwise;
    block++;
    x = h;
  };
  const cfg: [number, number, number, number][] = [
    [16, 1, 1, 1], [24, 2, 6, 2], [32, 2, 6, 3], [64, 2, 6, 4], [96, 1, 6, 3], [160, 2, 6, 3], [320, 1, 6, 1],
  ];
  for (const [f, s, t, n] of cfg) for (let i = 0; i < n; i++) invRes(f, i === 0 ? s : 1, t);
  const last = alpha > 1 ? makeDivisible(1280 * alpha) : 1280;
  x = ap(tf.layers.conv2d({ filters: last, kernelSize: 1, useBias: false, name: 'Conv_1' }), x);
  x = ap(bn('Conv_1_bn'), x);
  x = ap(tf.layers.reLU({ maxValue: 6, name: 'out_relu' }), x);
  x = ap(tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }), x);
  x = ap(tf.layers.dense({ units: classes, activation: 'softmax', name: 'predictions' }), x);
  return tf.model({ inputs: input, outputs: x, name: `mobilenetv2_${alpha.toFixed(2)}_${size}` });
}
