// The VGG family (Simonyan & Zisserman 2015) built with the tfjs Layers API, architectures as data and layer names
// exactly Keras' (block{b}_conv{i}, block{b}_pool, flatten, fc1, fc2, predictions), so Keras weight files map 1:1.
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.js';

/** Channel counts of the 3×3 convolutions; 'M' is a 2×2 max pool (which closes a block). */
export type VggCfg = ReadonlyArray<number | 'M'>;

export interface VggArch {
  cfg: VggCfg;
  /** Units of fc1 and fc2 in the classifier top. */
  fcUnits: number;
  /** conv (no bias) → BatchNormalization → ReLU blocks, named block{b}_conv{i}, block{b}_conv{i}_bn, block{b}_conv{i}_relu. */
  batchNorm?: boolean;
  /** Moving-average momentum of the BN statistics (default 0.9: short trainings still get usable inference statistics). */
  bnMomentum?: number;
}

export const VGG_ARCHS = {
  vgg11: { cfg: [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'], fcUnits: 4096 },
  vgg13: { cfg: [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'], fcUnits: 4096 },
  vgg16: { cfg: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'], fcUnits: 4096 },
  vgg19: { cfg: [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M'], fcUnits: 4096 },
  /** A narrow VGG for fast recipes and tests: 8× downsampling (14×14 map at 112×112), no final pool. */
  'vgg-tiny': { cfg: [16, 'M', 32, 'M', 64, 64, 'M', 128, 128], fcUnits: 256 },
  /** vgg-tiny with batch norm and 4× downsampling (16×16 map at 64×64): finer, better-localized CAMs, fast from scratch. */
  'vgg-tiny-bn': { cfg: [16, 'M', 32, 32, 'M', 64, 64, 128], fcUnits: 256, batchNorm: true, bnMomentum: 0.9 },
} as const satisfies Record<string, VggArch>;

export type VggName = keyof typeof VGG_ARCHS;

export interface VggOptions {
  /** Add flatten → fc1 → fc2 → predictions (default true, as Keras). */
  includeTop?: boolean;
  /** [height, width, channels]; default [224, 224, 3]. With the top, the input fixes fc1's size. */
  inputShape?: [number, number, number];
  /** Output classes of `predictions` (with the top); default 1000. */
  classes?: number;
  /** Without the top: global pooling after the last block, as Keras' `pooling` option. */
  pooling?: 'avg' | 'max';
  /** Seed for the weight initialisers (deterministic builds). */
  seed?: number;
}

/** Layer names of a cfg in order: block{b}_conv{i} and block{b}_pool. */
export function vggLayerNames(cfg: VggCfg): string[] {
  const names: string[] = [];
  let block = 1;
  let conv = 0;
  for (const c of cfg) {
    if (c === 'M') {
      names.push(`block${block}_pool`);
      block++;
      conv = 0;
    } else {
      names.push(`block${block}_conv${++conv}`);
    }
  }
  return names;
}

/** The last convolution of a cfg (where the GAP head attaches by default: block5_conv3 for VGG16). */
export function vggLastConv(cfg: VggCfg): string {
  return vggLayerNames(cfg).filter((n) => n.includes('_conv')).pop()!;
}

/** Where a GAP head attaches by default: the last conv, or with batch norm its ReLU (block{b}_conv{i}_relu). */
export function vggDefaultCut(arch: VggArch): string {
  return arch.batchNorm ? `${vggLastConv(arch.cfg)}_relu` : vggLastConv(arch.cfg);
}

/** Number of 2×2 pools before the last convolution (the feature-map stride at the default cut is 2^this). */
export function vggPoolsBeforeLastConv(cfg: VggCfg): number {
  const lastConv = cfg.length - 1 - [...cfg].reverse().findIndex((c) => c !== 'M');
  return cfg.slice(0, lastConv).filter((c) => c === 'M').length;
}

/** Builds a VGG from its cfg table with Keras' layer names. */
export function buildVggFromArch(name: string, arch: VggArch, opts: VggOptions = {}): tf.LayersModel {
  const includeTop = opts.includeTop ?? true;
  const inputShape = opts.inputShape ?? [224, 224, 3];
  const classes = opts.classes ?? 1000;
  if (inputShape.length !== 3 || !inputShape.every((v) => Number.isInteger(v) && v > 0)) {
    throw new UserError(`${name}: inputShape should be [height, width, channels] of positive integers; got [${inputShape.join(', ')}]`);
  }
  const pools = arch.cfg.filter((c) => c === 'M').length;
  const minSide = 2 ** pools;
  if (inputShape[0] < minSide || inputShape[1] < minSide) {
    throw new UserError(`${name}: input ${inputShape[0]}×${inputShape[1]} is too small; expected at least ${minSide}×${minSide} (${pools} pools)`);
  }
  if (!Number.isInteger(classes) || classes < 1) throw new UserError(`${name}: classes should be a positive integer; got ${classes}`);
  let seed = opts.seed;
  const init = () => (seed === undefined ? 'glorotUniform' : tf.initializers.glorotUniform({ seed: seed++ }));
  const input = tf.input({ shape: inputShape, name: 'input_1' });
  let x: tf.SymbolicTensor = input;
  const names = vggLayerNames(arch.cfg);
  arch.cfg.forEach((c, i) => {
    if (c === 'M') {
      x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: names[i] }).apply(x) as tf.SymbolicTensor;
    } else if (arch.batchNorm) {
      x = tf.layers.conv2d({ filters: c, kernelSize: 3, padding: 'same', useBias: false, name: names[i], kernelInitializer: init() })
        .apply(x) as tf.SymbolicTensor;
      x = tf.layers.batchNormalization({ axis: -1, momentum: arch.bnMomentum ?? 0.9, epsilon: 1e-3, name: `${names[i]}_bn` }).apply(x) as tf.SymbolicTensor;
      x = tf.layers.activation({ activation: 'relu', name: `${names[i]}_relu` }).apply(x) as tf.SymbolicTensor;
    } else {
      x = tf.layers.conv2d({ filters: c, kernelSize: 3, padding: 'same', activation: 'relu', name: names[i], kernelInitializer: init() })
        .apply(x) as tf.SymbolicTensor;
    }
  });
  if (includeTop) {
    x = tf.layers.flatten({ name: 'flatten' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: arch.fcUnits, activation: 'relu', name: 'fc1', kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: arch.fcUnits, activation: 'relu', name: 'fc2', kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: classes, activation: 'softmax', name: 'predictions', kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
  } else if (opts.pooling === 'avg') {
    x = tf.layers.globalAveragePooling2d({ name: 'global_average_pooling2d' }).apply(x) as tf.SymbolicTensor;
  } else if (opts.pooling === 'max') {
    x = tf.layers.globalMaxPooling2d({ name: 'global_max_pooling2d' }).apply(x) as tf.SymbolicTensor;
  }
  return tf.model({ inputs: input, outputs: x, name });
}

export function buildVgg(name: VggName, opts: VggOptions = {}): tf.LayersModel {
  return buildVggFromArch(name, VGG_ARCHS[name], opts);
}
