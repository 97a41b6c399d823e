// A hand-written training step for chain-shaped tfjs Layers models (VGG-GAP, NiN/darknet-style GAP heads,
// plain conv nets): forward and backward are written out layer by layer with one engine kernel per piece
// (src/perf/native.ts), the way TensorFlow's own graph runs them, instead of tfjs' generic tape.
//
// Why (measured on VGG16-GAP, 224×224, batch 8, native TensorFlow 2.21, 2 threads; see bench/PERFORMANCE.md):
//  - tfjs' tape keeps every tensor any gradient might need — conv output, bias-add output, ReLU output and the
//    masks of the ReLU gradient — until the whole backward pass is over: 3.75 GiB peak vs Keras' 1.4 GiB.
//    Here each layer keeps only what its own backward needs (its input or its output), and each activation is freed
//    as soon as the backward pass has gone below it, so the peak is the activations plus one layer's gradients.
//  - tfjs-core differentiates ReLU as dy * step(y), and tfjs-node builds `step` out of seven ops with full-size
//    temporaries; here it is TensorFlow's single ReluGrad kernel. Bias gradients are BiasAddGrad, the loss gradient
//    is SoftmaxCrossEntropyWithLogits (one kernel for loss and gradient).
//  - Layers below the lowest trainable layer run forward only (no input gradient, activations not kept), and the
//    first layer's input gradient is never computed.
// Gradients are then applied with the caller's own tfjs optimizer (optimizer.applyGradients), so optimizer state,
// learning-rate schedules and checkpoints are exactly those of the generic path.
import * as tf from '@tensorflow/tfjs';
import * as k from './native.js';
import { collectGarbage, nodeBuiltin } from '../util/gc.js';

/** One optimizer update from a batch; returns the mean loss before the update (a scalar the caller disposes; read
 *  it only when needed, e.g. every N steps, to avoid a synchronous round trip per step). */
export interface TrainStep {
  /** 'fused-sequential' (this file) or 'generic' (tfjs gradients via optimizer.minimize). */
  readonly kind: 'fused-sequential' | 'generic';
  /** Why the generic path is used (undefined for the fused path). */
  readonly reason?: string;
  /** images [N, H, W, C] float32; labels: class ids [N] int32, or targets [N, classes] float32 (one-hot or soft). */
  run(images: tf.Tensor4D, labels: tf.Tensor1D | tf.Tensor2D): tf.Scalar;
  /** With `profile: true` (fused path only): milliseconds spent per layer and phase, summed over all runs so far
   *  (tfjs-node runs each kernel synchronously, so these are the kernels' own times). */
  profile?(): ProfileEntry[];
}

export interface ProfileEntry {
  layer: string;
  phase: 'forward' | 'backward' | 'loss' | 'update';
  ms: number;
  calls: number;
  /** Peak resident set size (MiB) while this piece ran (Linux: VmHWM, reset before each piece). */
  rssMiB?: number;
  /** Largest tf.memory().numBytes (MiB) right after this piece: the tensors alive, as tfjs counts them. */
  liveMiB?: number;
}

/** Peak resident set size (MiB) since the last resetPeak(), from /proc/self/status (Linux only). */
function peakMiB(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+)/.exec(nodeBuiltin<typeof import('node:fs')>('node:fs')!.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Resets the kernel's peak-RSS mark (VmHWM) so that the next peakMiB() is the peak of what ran in between. */
function resetPeak(): void {
  try {
    nodeBuiltin<typeof import('node:fs')>('node:fs')!.writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    /* not Linux, or not permitted: the peak then includes earlier work */
  }
}

export interface TrainStepOptions {
  /** Record per-layer timings (see TrainStep.profile). */
  profile?: boolean;
  /** SGD/Momentum: update each layer as soon as its gradients exist (default true; env GAPCAM_APPLY_EACH_LAYER=0
   *  turns it off). */
  applyEachLayer?: boolean;
  /** Batch-splitting budgets in bytes (defaults MAP_BUDGET_BYTES, ACTIVATION_BUDGET_BYTES; tests set small ones). */
  splitBudgets?: { mapBytes?: number; activationBytes?: number; minSliceFlops?: number };
}

// ---- layer plans --------------------------------------------------------------------------------------------------

interface Ctx {
  training: boolean;
  /** The weights stay as they are until the pass ends and beyond (predict): convolutions may keep their filters in
   *  oneDNN's layout (native.ts, constant filters). */
  constantWeights?: boolean;
  /** Names of the variables to differentiate. */
  wanted: Set<string>;
  grads: tf.NamedTensorMap;
}

function wants(ctx: Ctx, v: tf.Variable | undefined): v is tf.Variable {
  return v !== undefined && ctx.wanted.has(v.name);
}

interface Op {
  name: string;
  /** Whether backward reads the layer's input / output. */
  needsInput: boolean;
  needsOutput: boolean;
  /** Variables whose gradients this op can produce. */
  weights: tf.Variable[];
  forward(x: tf.Tensor, ctx: Ctx): tf.Tensor;
  /** Gradient w.r.t. the input (null when !needDx); weight gradients go into ctx.grads. Must not dispose x, y, dy
   *  itself; calls `release()` (which frees dy and y) as soon as it no longer reads them, so that the largest
   *  gradients of a layer are not alive together with its output and upstream gradient. */
  backward(dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor, needDx: boolean, ctx: Ctx, release: () => void): tf.Tensor | null;
  /** Drops per-step state (e.g. dropout masks). */
  clear?(): void;
  /** A spatial pooling (predict's batch split ends after one). */
  pooling?: boolean;
  /** In training mode, each image's output depends on the whole batch (batch statistics): no gradient slices. */
  batchCoupled?: boolean;
}

// Batch splitting (FusedGradients.predict and gradients): the budgets above which a batch runs in slices. Chosen on
// VGG16-GAP at 224 (bench/PERFORMANCE.md); models whose maps fit (every shipped recipe at its batch size) never split.
/** Largest single activation map of the whole batch in inference. */
const MAP_BUDGET_BYTES = 32 * 2 ** 20;
/** All activation maps of a training batch (an upper bound of what the backward pass keeps). */
const ACTIVATION_BUDGET_BYTES = 256 * 2 ** 20;
/** Smallest forward work (FLOP) per training slice; below it a batch is not split (see trainSlice). */
const MIN_SLICE_FLOPS = 50e9;

type AnyLayer = tf.layers.Layer & Record<string, any>;

class Unsupported extends Error {}

function activationName(layer: AnyLayer): string {
  const a = layer.activation;
  if (a == null) return 'linear';
  return String(a.getClassName()).toLowerCase();
}

function pair(v: number | number[] | undefined, fallback: number): [number, number] {
  if (v == null) return [fallback, fallback];
  if (typeof v === 'number') return [v, v];
  return [v[0], v[1] ?? v[0]];
}

function varOf(layer: AnyLayer, field: 'kernel' | 'bias' | 'gamma' | 'beta'): tf.Variable | undefined {
  const lv = layer[field];
  return lv ? (lv.read() as tf.Variable) : undefined;
}

// Layer regularizers and constraints are not applied, exactly as with model.apply + tf.variableGrads (tfjs-layers
// adds them only inside model.fit); gapcam's recipes put weight decay in the optimizer update instead.

function checkChannelsLast(layer: AnyLayer): void {
  if (layer.dataFormat != null && layer.dataFormat !== 'channelsLast') {
    throw new Unsupported(`layer '${layer.name}' uses dataFormat ${layer.dataFormat}`);
  }
}

function convOp(layer: AnyLayer): Op {
  checkChannelsLast(layer);
  if (layer.rank !== 2) throw new Unsupported(`layer '${layer.name}' is a ${layer.rank}-D convolution`);
  const dil = pair(layer.dilationRate, 1);
  if (dil[0] !== 1 || dil[1] !== 1) throw new Unsupported(`layer '${layer.name}' is dilated`);
  const act = activationName(layer);
  if (act !== 'relu' && act !== 'linear') throw new Unsupported(`layer '${layer.name}' has activation ${act}`);
  const spec: k.Conv2DSpec = { strides: pair(layer.strides, 1), pad: layer.padding as k.Padding };
  if (spec.pad !== 'same' && spec.pad !== 'valid') throw new Unsupported(`layer '${layer.name}' has padding ${spec.pad}`);
  const W = varOf(layer, 'kernel')!;
  const B = layer.useBias ? varOf(layer, 'bias') : undefined;
  const weights = B ? [W, B] : [W];
  return {
    name: layer.name, needsInput: true, needsOutput: act === 'relu', weights,
    forward: (x, ctx) => k.convBiasAct(x as tf.Tensor4D, W as tf.Tensor4D, B as tf.Tensor1D | undefined, spec, act as 'relu' | 'linear',
      ctx.constantWeights),
    backward: (dy, x, y, needDx, ctx, release) => {
      const g = (act === 'relu' ? k.reluGrad(dy, y) : dy) as tf.Tensor4D;
      if (g !== dy) release();
      if (wants(ctx, W)) ctx.grads[W.name] = k.conv2dBackpropFilter(x as tf.Tensor4D, g, W.shape, spec);
      if (wants(ctx, B)) ctx.grads[B.name] = k.biasAddGrad(g);
      const dx = needDx ? k.conv2dBackpropInput(g, W as tf.Tensor4D, x.shape, spec) : null;
      if (g !== dy) g.dispose();
      return dx;
    },
  };
}

function denseOp(layer: AnyLayer, isLast: boolean): Op {
  let act = activationName(layer);
  if (act === 'softmax' && isLast) act = 'linear'; // the loss takes logits; softmax is folded into it
  if (act !== 'relu' && act !== 'linear') throw new Unsupported(`layer '${layer.name}' has activation ${act}`);
  const W = varOf(layer, 'kernel')!;
  const B = layer.useBias ? varOf(layer, 'bias') : undefined;
  const weights = B ? [W, B] : [W];
  return {
    name: layer.name, needsInput: true, needsOutput: act === 'relu', weights,
    forward: (x) => {
      if (x.rank !== 2) throw new Unsupported(`layer '${layer.name}' gets a rank-${x.rank} input`);
      return tf.fused.matMul({ a: x as tf.Tensor2D, b: W as tf.Tensor2D, bias: B, activation: act as 'relu' | 'linear' });
    },
    backward: (dy, x, y, needDx, ctx) => {
      const g = act === 'relu' ? k.reluGrad(dy, y) : dy;
      if (wants(ctx, W)) ctx.grads[W.name] = tf.matMul(x as tf.Tensor2D, g as tf.Tensor2D, true, false);
      if (wants(ctx, B)) ctx.grads[B.name] = k.biasAddGrad(g);
      const dx = needDx ? tf.matMul(g as tf.Tensor2D, W as tf.Tensor2D, false, true) : null;
      if (g !== dy) g.dispose();
      return dx;
    },
  };
}

function poolOp(layer: AnyLayer, kind: 'max' | 'avg'): Op {
  checkChannelsLast(layer);
  const spec: k.PoolSpec = {
    filterSize: pair(layer.poolSize, 2), strides: pair(layer.strides ?? layer.poolSize, 2), pad: layer.padding as k.Padding,
  };
  if (spec.pad !== 'same' && spec.pad !== 'valid') throw new Unsupported(`layer '${layer.name}' has padding ${spec.pad}`);
  let workspace: tf.Tensor | undefined;
  const clear = () => {
    workspace?.dispose();
    workspace = undefined;
  };
  return {
    name: layer.name, needsInput: true, needsOutput: kind === 'max', weights: [], pooling: true,
    forward: (x) => {
      if (kind === 'avg') return k.avgPool(x as tf.Tensor4D, spec);
      const r = k.maxPool(x as tf.Tensor4D, spec);
      clear();
      workspace = r.workspace;
      return r.y;
    },
    backward: (dy, x, y, needDx) => {
      if (!needDx) return null;
      const dx = kind === 'max' ? k.maxPoolGrad(dy as tf.Tensor4D, x as tf.Tensor4D, y as tf.Tensor4D, spec, workspace)
        : k.avgPoolGrad(dy as tf.Tensor4D, x as tf.Tensor4D, spec);
      clear();
      return dx;
    },
    clear,
  };
}

function gapOp(layer: AnyLayer): Op {
  checkChannelsLast(layer);
  if (layer.keepDims) throw new Unsupported(`layer '${layer.name}' keeps dims`);
  return {
    name: layer.name, needsInput: true, needsOutput: false, weights: [],
    forward: (x) => tf.mean(x, [1, 2]),
    backward: (dy, x, _y, needDx) => {
      if (!needDx) return null;
      const [n, h, w, c] = x.shape;
      return tf.tidy(() => tf.tile(tf.reshape(tf.div(dy, h * w), [n, 1, 1, c]), [1, h, w, 1]));
    },
  };
}

function flattenOp(layer: AnyLayer): Op {
  return {
    name: layer.name, needsInput: true, needsOutput: false, weights: [],
    forward: (x) => tf.reshape(x, [x.shape[0], -1]),
    backward: (dy, x, _y, needDx) => (needDx ? tf.reshape(dy, x.shape) : null),
  };
}

function activationOp(layer: AnyLayer, isLast: boolean): Op {
  const cls = layer.getClassName();
  let act: string;
  let alpha = 0;
  if (cls === 'ReLU') {
    if (layer.maxValue != null) throw new Unsupported(`layer '${layer.name}' has maxValue`);
    act = 'relu';
  } else if (cls === 'LeakyReLU') {
    act = 'leakyrelu';
    alpha = layer.alpha;
    if (!(alpha > 0)) throw new Unsupported(`layer '${layer.name}' has alpha ${alpha}`);
  } else {
    act = activationName(layer);
  }
  if (act === 'softmax' && isLast) act = 'linear';
  if (act === 'linear') {
    return { name: layer.name, needsInput: false, needsOutput: false, weights: [],
      forward: (x) => tf.clone(x), backward: (dy, _x, _y, needDx) => (needDx ? tf.clone(dy) : null) };
  }
  if (act !== 'relu' && act !== 'leakyrelu') throw new Unsupported(`layer '${layer.name}' has activation ${act}`);
  return {
    name: layer.name, needsInput: false, needsOutput: true, weights: [],
    forward: (x) => (act === 'relu' ? tf.relu(x) : tf.leakyRelu(x, alpha)),
    // y has the sign of x for relu and for leaky ReLU with alpha > 0, so the output serves as the mask.
    backward: (dy, _x, y, needDx) => (needDx ? (act === 'relu' ? k.reluGrad(dy, y) : k.leakyReluGrad(dy, y, alpha)) : null),
  };
}

function dropoutOp(layer: AnyLayer): Op {
  if (layer.noiseShape != null) throw new Unsupported(`layer '${layer.name}' has a noiseShape`);
  const rate: number = layer.rate;
  let mask: tf.Tensor | undefined;
  return {
    name: layer.name, needsInput: false, needsOutput: false, weights: [],
    forward: (x, ctx) => {
      if (!ctx.training || rate === 0) return tf.clone(x);
      mask?.dispose();
      mask = tf.tidy(() => tf.div(tf.cast(tf.greaterEqual(tf.randomUniform(x.shape), rate), 'float32'), 1 - rate));
      return tf.mul(x, mask);
    },
    backward: (dy, _x, _y, needDx) => {
      if (!needDx) return null;
      return mask ? tf.mul(dy, mask) : tf.clone(dy);
    },
    clear: () => {
      mask?.dispose();
      mask = undefined;
    },
  };
}

/** BatchNormalization. Inference mode (training: false): the moving statistics, a per-channel affine map. Training
 *  mode: the batch's statistics, as tfjs-layers computes them (tf.moments: mean and biased variance over N, H, W),
 *  with the moving statistics updated in the forward pass exactly as tfjs-layers updates them; the backward pass is
 *  the full batch-norm gradient through the batch statistics,
 *  dx = γ·invStd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)), M = N·H·W. The batch's mean and invStd are kept for the backward
 *  pass (per channel: small). A batch in training mode is never split into slices (its statistics couple the images). */
function batchNormOp(layer: AnyLayer): Op {
  const axis = Array.isArray(layer.axis) ? layer.axis : [layer.axis];
  if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3)) throw new Unsupported(`layer '${layer.name}' normalises axis ${axis}`);
  const read = (f: string) => (layer[f] ? (layer[f].read() as tf.Variable) : undefined);
  const gamma = read('gamma');
  const beta = read('beta');
  const movingMean = read('movingMean')!;
  const movingVariance = read('movingVariance')!;
  const eps: number = layer.epsilon;
  const momentum: number = layer.momentum;
  const weights = [gamma, beta].filter((v): v is tf.Variable => v !== undefined);
  let batch: { mean: tf.Tensor; invStd: tf.Tensor } | undefined;
  const clear = () => {
    if (batch) tf.dispose([batch.mean, batch.invStd]);
    batch = undefined;
  };
  // tfjs-layers' doMovingAverage, op for op, so that both paths keep the same moving statistics
  const movingAverage = (v: tf.Variable, value: tf.Tensor) => v.assign(tf.sub(v, tf.mul(tf.sub(v, value), 1 - momentum)));
  return {
    name: layer.name, needsInput: true, needsOutput: false, weights, batchCoupled: true,
    forward: (x, ctx) => {
      if (!ctx.training) return tf.batchNorm(x, movingMean, movingVariance, beta, gamma, eps);
      clear();
      return tf.tidy(() => {
        const { mean, variance } = tf.moments(x, [0, 1, 2]);
        movingAverage(movingMean, mean);
        movingAverage(movingVariance, variance);
        batch = { mean: tf.keep(mean), invStd: tf.keep(tf.rsqrt(tf.add(variance, eps))) };
        return tf.batchNorm(x, mean, variance, beta, gamma, eps);
      });
    },
    backward: (dy, x, _y, needDx, ctx) => tf.tidy(() => {
      if (!ctx.training) {
        const inv = tf.rsqrt(tf.add(movingVariance, eps));
        if (wants(ctx, gamma)) ctx.grads[gamma.name] = tf.keep(tf.sum(tf.mul(dy, tf.mul(tf.sub(x, movingMean), inv)), [0, 1, 2]));
        if (wants(ctx, beta)) ctx.grads[beta.name] = tf.keep(k.biasAddGrad(dy));
        if (!needDx) return null as unknown as tf.Tensor;
        return tf.mul(dy, gamma ? tf.mul(gamma, inv) : inv);
      }
      const { mean, invStd } = batch!;
      const xhat = tf.mul(tf.sub(x, mean), invStd);
      const dBeta = k.biasAddGrad(dy);
      const dGamma = tf.sum(tf.mul(dy, xhat), [0, 1, 2]);
      if (wants(ctx, gamma)) ctx.grads[gamma.name] = tf.keep(dGamma);
      if (wants(ctx, beta)) ctx.grads[beta.name] = tf.keep(dBeta);
      if (!needDx) return null as unknown as tf.Tensor;
      const [n, h, w] = x.shape;
      const m = n * h * w;
      const scale = tf.div(gamma ? tf.mul(gamma, invStd) : invStd, m);
      return tf.mul(scale, tf.sub(tf.sub(tf.mul(dy, m), dBeta), tf.mul(xhat, dGamma)));
    }) ?? null,
    clear,
  };
}

/** The layers from the model's single input to its single output, in order; throws Unsupported otherwise. */
function chainOf(model: tf.LayersModel): AnyLayer[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new Unsupported('the model has several inputs or outputs');
  const chain: AnyLayer[] = [];
  let t = model.outputs[0];
  while (t !== model.inputs[0]) {
    if (t.inputs.length !== 1) throw new Unsupported(`the fused step covers chain-shaped models only; layer '${t.sourceLayer.name}' (${t.sourceLayer.getClassName()}) has ${t.inputs.length} inputs`);
    chain.unshift(t.sourceLayer as AnyLayer);
    t = t.inputs[0];
  }
  return chain;
}

function planOps(model: tf.LayersModel): Op[] {
  const layers = chainOf(model);
  return layers.map((layer, i) => {
    const isLast = i === layers.length - 1;
    switch (layer.getClassName()) {
      case 'Conv2D': return convOp(layer);
      case 'Dense': return denseOp(layer, isLast);
      case 'MaxPooling2D': return poolOp(layer, 'max');
      case 'AveragePooling2D': return poolOp(layer, 'avg');
      case 'GlobalAveragePooling2D': return gapOp(layer);
      case 'Flatten': return flattenOp(layer);
      case 'Activation': case 'ReLU': case 'LeakyReLU': return activationOp(layer, isLast);
      case 'Dropout': return dropoutOp(layer);
      case 'BatchNormalization': return batchNormOp(layer);
      default: throw new Unsupported(`layer '${layer.name}' (${layer.getClassName()}) has no fused implementation`);
    }
  });
}

/** Why `model` cannot use the fused step, or undefined when it can. */
export function fusedStepUnsupported(model: tf.LayersModel): string | undefined {
  try {
    planOps(model);
    return undefined;
  } catch (err) {
    if (err instanceof Unsupported) return err.message;
    throw err;
  }
}

function toTargets(labels: tf.Tensor1D | tf.Tensor2D, classes: number): tf.Tensor2D {
  if (labels.rank === 2) return labels.dtype === 'float32' ? (tf.clone(labels) as tf.Tensor2D) : (tf.cast(labels, 'float32') as tf.Tensor2D);
  return tf.tidy(() => tf.cast(tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, classes), 'float32') as tf.Tensor2D);
}

export interface FusedGradientsOptions {
  /** Layers in training mode (dropout active); false = inference mode (moving BN statistics), as model.apply's
   *  `training` kwarg. Default true. */
  training?: boolean;
  /** The variables to differentiate (default: the model's trainable weights). Layers below the lowest one run
   *  forward only. */
  variables?: tf.Variable[];
  /** Called with each layer's gradients as soon as they exist (top layer first), taking ownership of them (the
   *  callback disposes them); the result's `grads` is then empty. Lets an optimizer update a layer and free its
   *  gradients while the backward pass goes on, so not all gradients are alive at once. */
  onGradients?: (grads: tf.NamedTensorMap) => void;
  /** Replaces each gradient as soon as its layer's backward produced it (before onGradients), e.g. by its all-reduce
   *  over data-parallel workers (src/distributed), so communication follows the backward pass layer by layer as in
   *  PyTorch's DDP. The original gradient is disposed here. */
  reduceGradient?: (grad: tf.Tensor) => tf.Tensor;
}

export interface FusedGradientsResult {
  /** Mean softmax cross-entropy of the batch (on logits; a final softmax is folded into the loss). */
  loss: tf.Scalar;
  /** Gradients by variable name, in the order of `variables` (tfjs optimizers keep slots by position). */
  grads: tf.NamedTensorMap;
  /** How many images the model classified correctly before the update (argmax of the logits = label). */
  correct: tf.Scalar;
}

/**
 * Loss and gradients of a chain-shaped Layers model by a hand-written backward pass: a drop-in for
 * `tf.variableGrads(() => crossEntropy(model.apply(x)), vars)` that keeps a fraction of the memory and runs one
 * engine kernel per piece. Create once per model (construction plans the layers; it throws naming the first
 * layer it cannot handle — see fusedStepUnsupported).
 */
export class FusedGradients {
  private readonly ops: Op[];
  private readonly allTrainable: tf.Variable[];
  private readonly timings = new Map<string, ProfileEntry>();

  /** Bytes of each op's output per image (float32), from the layers' static shapes; undefined when a shape is
   *  dynamic (then batches are never split). */
  private readonly outputBytesPerImage: number[] | undefined;
  private readonly flopsPerImage: number;

  constructor(private readonly model: tf.LayersModel, private readonly options: TrainStepOptions = {}) {
    try {
      this.ops = planOps(model);
    } catch (err) {
      if (err instanceof Unsupported) throw new Error(`fused gradients: ${err.message}`);
      throw err;
    }
    const sizes = chainOf(model).map((l) => {
      const shape = l.outputShape as (number | null)[];
      return shape.slice(1).every((d) => typeof d === 'number') ? 4 * shape.slice(1).reduce((a: number, d) => a * (d as number), 1) : NaN;
    });
    this.outputBytesPerImage = sizes.every(Number.isFinite) ? sizes : undefined;
    // Multiply-adds ×2 of the convolutions and dense layers for one image (the forward pass).
    this.flopsPerImage = chainOf(model).reduce((sum, l) => {
      const kernel = l.getClassName() === 'Conv2D' || l.getClassName() === 'Dense' ? (l.kernel?.shape as number[] | undefined) : undefined;
      if (!kernel) return sum;
      const out = (l.outputShape as (number | null)[]).slice(1, -1).reduce((a: number, d) => a * (d ?? 0), 1);
      return sum + 2 * out * kernel.reduce((a, d) => a * d, 1);
    }, 0);

    this.allTrainable = model.trainableWeights.map((v) => v.read() as tf.Variable);
    // The weights' JS-side initial values go now rather than at some later collection (see collectGarbage).
    k.materialize(model.weights.map((v) => v.read()));
    collectGarbage();
    this.softmaxOutput = activationName(model.outputs[0].sourceLayer as AnyLayer) === 'softmax';
  }

  /** Whether the model's last layer applies softmax (folded into the loss; applied by predict). */
  readonly softmaxOutput: boolean;

  /** Per-layer timings (with `profile: true`), summed over all calls. */
  profile(): ProfileEntry[] {
    return [...this.timings.values()].map((e) => ({ ...e }));
  }

  private timed<T>(layer: string, phase: ProfileEntry['phase'], f: () => T): T {
    if (!this.options.profile) return f();
    resetPeak();
    const t0 = performance.now();
    const out = f();
    const key = `${layer}\u0000${phase}`;
    const e = this.timings.get(key) ?? { layer, phase, ms: 0, calls: 0 };
    e.ms += performance.now() - t0;
    e.calls++;
    const rss = peakMiB();
    if (rss !== undefined) e.rssMiB = Math.max(e.rssMiB ?? 0, rss);
    e.liveMiB = Math.max(e.liveMiB ?? 0, tf.memory().numBytes / 2 ** 20);
    this.timings.set(key, e);
    return out;
  }

  /** model.predict(images) for inference, with the same kernels as the training pass and each activation freed as
   *  soon as the next layer has read it (tfjs' predict keeps every intermediate until the batch is done). Returns
   *  what the model outputs (probabilities when its last activation is softmax). */
  predict(images: tf.Tensor4D): tf.Tensor2D {
    const ctx: Ctx = { training: false, constantWeights: true, wanted: new Set(), grads: {} };
    // The first layers of a CNN hold the largest maps (VGG16 at 224, batch 8: 103 MB each in block 1). Those layers
    // run on slices of the batch (see predictPlan), so only a slice's maps are alive at once; their outputs, which
    // are small by then, are joined and the rest of the network runs on the whole batch, where batching pays.
    const plan = this.predictPlan(images.shape[0]);
    const run = (x: tf.Tensor, from: number, to: number): tf.Tensor => {
      const input = x;
      try {
        for (let i = from; i < to; i++) {
          const y = this.ops[i].forward(x, ctx);
          if (x !== input) x.dispose();
          x = y;
          this.ops[i].clear?.();
        }
        return x;
      } catch (err) {
        if (x !== input) x.dispose();
        throw err;
      }
    };
    let x: tf.Tensor;
    if (!plan) {
      x = run(images, 0, this.ops.length);
    } else {
      const parts: tf.Tensor[] = [];
      let mid: tf.Tensor;
      try {
        for (let start = 0; start < images.shape[0]; start += plan.slice) {
          const part = tf.slice(images, start, Math.min(plan.slice, images.shape[0] - start));
          try {
            parts.push(run(part, 0, plan.upTo));
          } finally {
            part.dispose();
          }
        }
        mid = tf.concat(parts);
      } finally {
        tf.dispose(parts);
      }
      try {
        x = run(mid, plan.upTo, this.ops.length);
      } finally {
        if (plan.upTo < this.ops.length) mid.dispose();
      }
    }
    if (!this.softmaxOutput || x === images) return x as tf.Tensor2D;
    const p = tf.softmax(x) as tf.Tensor2D;
    x.dispose();
    return p;
  }

  /** How predict splits a batch of `n`: ops [0, upTo) run on slices of `slice` images; undefined = no split. The
   *  split covers the layers whose output for the whole batch exceeds MAP_BUDGET_BYTES (and the pooling that
   *  follows the last of them), with slices as large as the budget allows but at least 2 images: oneDNN's
   *  convolutions run one image at a time at a fraction of their batched speed (VGG16-GAP, 2 threads: 1-image
   *  slices 7.6 images/s, 2-image slices 9.8, no split 9.4; peak memory 588, 555 and 630 MiB). */
  private predictPlan(n: number): { upTo: number; slice: number } | undefined {
    const sizes = this.outputBytesPerImage;
    if (!sizes || n <= 2) return undefined;
    let last = -1;
    const budget = this.options.splitBudgets?.mapBytes ?? MAP_BUDGET_BYTES;
    sizes.forEach((b, i) => {
      if (b * n > budget) last = i;
    });
    if (last < 0) return undefined;
    if (last + 1 < this.ops.length && this.ops[last + 1].pooling) last++;
    const largest = Math.max(...sizes.slice(0, last + 1));
    const most = Math.max(2, Math.floor(budget / largest));
    const slice = Math.max(2, Math.ceil(n / Math.ceil(n / most))); // equal slices: 16 → 8 + 8, not 10 + 6
    return slice >= n ? undefined : { upTo: last + 1, slice };
  }

  /** Images per pass for a training batch of `n` (gradient accumulation; see gradients), or undefined for one
   *  pass: the saved activations of the whole batch are kept under ACTIVATION_BUDGET_BYTES, where slices keep at
   *  least MIN_SLICE_FLOPS of work. */
  private trainSlice(n: number): number | undefined {
    const sizes = this.outputBytesPerImage;
    if (!sizes || n <= 2) return undefined;
    const budget = this.options.splitBudgets?.activationBytes ?? ACTIVATION_BUDGET_BYTES;
    const perImage = sizes.reduce((a, b) => a + b, 0);
    if (perImage * n <= budget) return undefined;
    // Equal slices (8 → 4 + 4, not 7 + 1): a small last slice runs at a fraction of oneDNN's batched speed.
    const slice = Math.max(2, Math.ceil(n / Math.ceil((perImage * n) / budget)));
    // Only where a slice still holds enough work for oneDNN's batched speed: VGG16-GAP at 224 in 4-image slices
    // (~120 GFLOP each) trains 3 % slower than in one pass; darknet-gap in 6-image slices (~5 GFLOP), 17 %.
    if (slice * this.flopsPerImage < (this.options.splitBudgets?.minSliceFlops ?? MIN_SLICE_FLOPS)) return undefined;
    return slice >= n ? undefined : slice;
  }

  /** images [N, H, W, C]; labels: class ids [N] (int32) or targets [N, classes] (float32). The caller disposes the
   *  returned tensors. */
  gradients(images: tf.Tensor4D, labels: tf.Tensor1D | tf.Tensor2D, options: FusedGradientsOptions = {}): FusedGradientsResult {
    const n = images.shape[0];
    const coupled = (options.training ?? true) && this.ops.some((op) => op.batchCoupled);
    const slice = coupled ? undefined : this.trainSlice(n);
    if (!slice) return this.pass(images, labels, options, 1);
    // Gradient accumulation: the batch runs forward and backward in slices, each slice's loss weighted by its share
    // of the batch, and each slice's gradients are added to the earlier slices' sum as they appear; the last slice
    // hands the batch's gradients on (reduced, per layer) as one pass would. Same update as one pass on the whole
    // batch up to float summation order (no layer couples the images of a batch: a training-mode BatchNormalization
    // never gets here), with the saved activations of `slice` images instead of `n`.
    let pending: tf.NamedTensorMap | undefined;
    let loss: tf.Scalar | undefined;
    let correct: tf.Scalar | undefined;
    try {
      for (let start = 0; start < n; start += slice) {
        const m = Math.min(slice, n - start);
        const last = start + m >= n;
        const r = { x: tf.slice(images, start, m), y: tf.slice(labels, start, m) };
        let part: FusedGradientsResult;
        try {
          part = this.pass(r.x as tf.Tensor4D, r.y as tf.Tensor1D | tf.Tensor2D,
            last ? options : { training: options.training, variables: options.variables }, m / n, pending);
        } finally {
          tf.dispose([r.x, r.y]);
        }
        pending = last ? undefined : part.grads;
        const [l, c] = [loss, correct];
        loss = l ? tf.tidy(() => tf.add(l, part.loss)) as tf.Scalar : part.loss;
        correct = c ? tf.tidy(() => tf.add(c, part.correct)) as tf.Scalar : part.correct;
        if (l) tf.dispose([l, c!, part.loss, part.correct]);
        if (last) return { loss, grads: part.grads, correct };
      }
      throw new Error('unreachable');
    } catch (err) {
      tf.dispose([loss!, correct!].filter(Boolean));
      if (pending) tf.dispose(pending);
      throw err;
    }
  }

  /** One forward and backward pass over `images`: loss and gradients scaled by `scale` (the pass's share of its
   *  batch); `pending` gradients (of earlier slices, owned here from now on) are added to each gradient as soon as
   *  the backward pass produced it, before reduceGradient / onGradients see it. */
  private pass(images: tf.Tensor4D, labels: tf.Tensor1D | tf.Tensor2D, options: FusedGradientsOptions, scale: number,
    pending?: tf.NamedTensorMap): FusedGradientsResult {
    const ops = this.ops;
    const variables = options.variables ?? this.allTrainable;
    const ctx: Ctx = { training: options.training ?? true, wanted: new Set(variables.map((v) => v.name)), grads: {} };
    const lowest = ops.findIndex((op) => op.weights.some((v) => ctx.wanted.has(v.name)));
    if (lowest < 0) throw new Error('fused gradients: none of the variables belongs to the model');
    // Activation i (output of ops[i]; -1 is the caller's input) is kept while a later backward reads it.
    const keep = (i: number): boolean => (i >= lowest && ops[i].needsOutput) ||
      (i + 1 >= lowest && i + 1 < ops.length && ops[i + 1].needsInput);
    const acts: (tf.Tensor | undefined)[] = new Array(ops.length);
    let loss: tf.Scalar | undefined;
    let correct: tf.Scalar | undefined;
    try {
      let x: tf.Tensor = images;
      for (let i = 0; i < ops.length; i++) {
        const xi = x;
        const y = this.timed(ops[i].name, 'forward', () => ops[i].forward(xi, ctx));
        if (i > 0 && !keep(i - 1)) {
          acts[i - 1]?.dispose();
          acts[i - 1] = undefined;
        }
        acts[i] = y;
        x = y;
      }
      const logits = acts[ops.length - 1] as tf.Tensor2D;
      if (logits.rank !== 2) throw new Error(`fused gradients: the model output has rank ${logits.rank}; expected [batch, classes]`);
      const ce = this.timed('softmax-cross-entropy', 'loss', () => tf.tidy(() => {
        const targets = toTargets(labels, logits.shape[1]);
        const ids = labels.rank === 1 ? tf.cast(labels, 'int32') : tf.argMax(labels, -1);
        const r = k.softmaxCrossEntropy(logits, targets);
        const scaled = scale === 1 ? r : { loss: tf.mul(r.loss, scale) as tf.Scalar, dLogits: tf.mul(r.dLogits, scale) as tf.Tensor2D };
        return { ...scaled, correct: tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), ids), 'float32')) as tf.Scalar };
      }));
      loss = ce.loss;
      correct = ce.correct;
      let dy: tf.Tensor = ce.dLogits;
      const reduced = new Set<string>();
      for (let i = ops.length - 1; i >= lowest; i--) {
        const input = i > 0 ? acts[i - 1]! : images;
        const dyi = dy;
        const release = () => {
          dyi.dispose();
          acts[i]?.dispose();
          acts[i] = undefined;
        };
        const dx = this.timed(ops[i].name, 'backward', () => ops[i].backward(dyi, input, acts[i]!, i > lowest, ctx, release));
        release();
        if (pending) {
          for (const name of Object.keys(ctx.grads)) {
            const earlier = pending[name];
            if (!earlier) continue;
            const g = ctx.grads[name];
            ctx.grads[name] = tf.add(earlier, g);
            tf.dispose([earlier, g]);
            delete pending[name];
          }
        }
        if (options.reduceGradient) {
          for (const name of Object.keys(ctx.grads)) {
            if (reduced.has(name)) continue;
            const g = ctx.grads[name];
            ctx.grads[name] = options.reduceGradient(g);
            g.dispose();
            reduced.add(name);
          }
        }
        if (options.onGradients && Object.keys(ctx.grads).length > 0) {
          const ready = ctx.grads;
          ctx.grads = {};
          this.timed(ops[i].name, 'update', () => options.onGradients!(ready));
        }
        if (!dx) break;
        dy = dx;
      }
      const grads: tf.NamedTensorMap = {};
      for (const v of variables) if (ctx.grads[v.name]) grads[v.name] = ctx.grads[v.name];
      ctx.grads = {};
      return { loss, grads, correct };
    } catch (err) {
      loss?.dispose();
      correct?.dispose();
      throw err;
    } finally {
      for (const a of acts) a?.dispose();
      for (const g of Object.values(ctx.grads)) g.dispose();
      if (pending) tf.dispose(pending);
      for (const op of ops) op.clear?.();
    }
  }
}

/** The fused step; throws an Error naming the first unsupported layer. */
export function createFusedTrainStep(model: tf.LayersModel, optimizer: tf.Optimizer, options: TrainStepOptions = {}): TrainStep {
  const fused = new FusedGradients(model, options);
  // SGD and Momentum update each variable from its own gradient and slot only, and skip names whose gradient is
  // null while keeping every slot at its position; so each layer can be updated (and its gradients freed) as soon
  // as the backward pass has produced them. The slot order is the full trainable-weight order every time.
  // Other optimizers (Adam: bias corrections advance per call) get all gradients at once.
  const names = model.trainableWeights.map((v) => (v.read() as tf.Variable).name);
  const perLayer = options.applyEachLayer ?? process.env.GAPCAM_APPLY_EACH_LAYER !== '0';
  const eachLayer = perLayer && ['SGD', 'Momentum'].includes(optimizer.getClassName())
    ? (grads: tf.NamedTensorMap) => {
      const all: Record<string, tf.Tensor | null> = {};
      for (const n of names) all[n] = grads[n] ?? null;
      try {
        optimizer.applyGradients(all as unknown as tf.NamedTensorMap);
      } finally {
        tf.dispose(grads);
      }
    }
    : undefined;
  return {
    kind: 'fused-sequential',
    profile: () => fused.profile(),
    run(images, labels) {
      const iterations = optimizer.iterations;
      const { loss, grads, correct } = fused.gradients(images, labels, { training: true, onGradients: eachLayer });
      correct.dispose();
      try {
        // Gradients come in the model's trainable-weight order, as model.fit passes them: tfjs optimizers keep
        // their slots by position, so either path can continue the other's optimizer state.
        if (eachLayer) (optimizer as unknown as { iterations_: number }).iterations_ = iterations + 1;
        else optimizer.applyGradients(grads);
        return loss;
      } catch (err) {
        loss.dispose();
        throw err;
      } finally {
        tf.dispose(grads);
      }
    },
  };
}

/** tfjs' own gradients (optimizer.minimize) with the same loss: softmax cross-entropy on the model's logits (a
 *  final softmax activation is treated as part of the loss, as Keras does). */
export function createGenericTrainStep(model: tf.LayersModel, optimizer: tf.Optimizer, reason?: string): TrainStep {
  const outLayer = model.outputs[0].sourceLayer as AnyLayer;
  const softmaxOut = activationName(outLayer) === 'softmax';
  // As model.fit does: only the model's trainable weights (tfjs' default would be every trainable variable alive).
  const varList = model.trainableWeights.map((v) => v.read() as tf.Variable);
  return {
    kind: 'generic',
    reason,
    run(images, labels) {
      const targets = toTargets(labels, model.outputs[0].shape[1] as number);
      try {
        return optimizer.minimize(() => {
          const out = model.apply(images, { training: true }) as tf.Tensor2D;
          if (!softmaxOut) return tf.losses.softmaxCrossEntropy(targets, out) as tf.Scalar;
          const p = tf.clipByValue(out, 1e-7, 1 - 1e-7);
          return tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.log(p)), 1))) as tf.Scalar;
        }, true, varList) as tf.Scalar;
      } finally {
        targets.dispose();
      }
    },
  };
}

/** The fastest correct step for `model`: fused when every layer is supported, else tfjs' generic gradients (with the
 *  reason in `.reason`). Set GAPCAM_GENERIC_STEP=1 to force the generic path (as the trainer reads it). */
export function createTrainStep(model: tf.LayersModel, optimizer: tf.Optimizer, options: TrainStepOptions = {}): TrainStep {
  if (process.env.GAPCAM_GENERIC_STEP) return createGenericTrainStep(model, optimizer, 'GAPCAM_GENERIC_STEP is set');
  const why = fusedStepUnsupported(model);
  return why ? createGenericTrainStep(model, optimizer, why) : createFusedTrainStep(model, optimizer, options);
}

const predictors = new WeakMap<tf.LayersModel, (images: tf.Tensor4D) => tf.Tensor>();

/** `model.predict` for inference code paths (CAMs, features, evaluation): FusedGradients.predict when the model is a
 *  chain it covers in inference mode (fused oneDNN kernels, each activation freed once read, large batches split),
 *  else tfjs-layers' predict. Cached per model; the model must not be changed structurally afterwards. */
export function fastPredictor(model: tf.LayersModel): (images: tf.Tensor4D) => tf.Tensor {
  let p = predictors.get(model);
  if (!p) {
    const fused = !process.env.GAPCAM_GENERIC_STEP && !fusedStepUnsupported(model) ? new FusedGradients(model) : undefined;
    p = fused ? (images) => fused.predict(images) : (images) => model.predict(images) as tf.Tensor;
    predictors.set(model, p);
  }
  return p;
}
