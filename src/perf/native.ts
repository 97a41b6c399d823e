// Single kernels for hand-written forward/backward passes.
//
// On the native `tensorflow` engine each function here is ONE TensorFlow eager op (ReluGrad, BiasAddGrad,
// SoftmaxCrossEntropyWithLogits, ...), where tfjs' generic gradients would run several: tfjs-core's ReLU gradient is
// `dy * step(y)`, and tfjs-node implements `step` with isNaN + greater + ones + fill + where + select — seven passes
// and five temporary full-size tensors over every activation map (100 MB each in VGG16's first block at batch 8).
// On the other engines the same functions fall back to portable tfjs ops, so code written on them runs everywhere.
//
// Nothing here records on a gradient tape: callers run them outside tf.grad / optimizer.minimize.
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-node's backend used here (not part of tfjs' public types). */
interface NodeBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_STRING: number; TF_ATTR_INT: number; TF_ATTR_FLOAT: number;
    TF_ATTR_BOOL: number; TF_FLOAT: number; TF_INT32: number };
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: unknown[], inputs: tf.Tensor[], n: number): tf.Tensor[];
}

/** Copies `tensors`' values into the native engine now. tfjs-node keeps a new tensor's values in a JS typed array
 *  until its first use, and lets that copy go only then. No-op on the other engines. */
export function materialize(tensors: tf.Tensor[]): void {
  const b = nativeBackend() as unknown as { getInputTensorIds?: (t: tf.Tensor[]) => unknown } | undefined;
  if (typeof b?.getInputTensorIds === 'function') b.getInputTensorIds(tensors);
}

/** The tfjs-node backend when the running engine is native TensorFlow, else undefined. */
export function nativeBackend(): NodeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const b = tf.backend() as unknown as Partial<NodeBackend>;
  return typeof b.executeSingleOutput === 'function' && b.binding ? (b as NodeBackend) : undefined;
}

function floatT(b: NodeBackend) {
  return { name: 'T', type: b.binding.TF_ATTR_TYPE, value: b.binding.TF_FLOAT };
}

// ---- oneDNN kernels called by name ---------------------------------------------------------------------------------
// TensorFlow's x86 builds run oneDNN kernels, but eager execution (all tfjs-node does) only swaps a few ops for them
// (convolutions, matmuls); graph mode (Keras) also gets oneDNN max pooling and conv+bias(+ReLU) fusion. gapcam
// calls those kernels directly by their registered names and kernel label: _MklNativeFusedConv2D (conv + bias + ReLU
// in one primitive: no separate pass, and no second full-size map alive, per activation; its list attributes need
// gapcam's engine build, scripts/setup-engine.mjs patch 2), _MklNativeConv2DWithBias (conv + bias, where the binding
// cannot pass lists) and _MklNativeMaxPool/_MklNativeMaxPoolGrad (with oneDNN's workspace; ~7× faster than Eigen's
// MaxPoolGrad at VGG16's first pool). Each is probed once against the portable op on a small input and used only if it gives the same
// numbers; GAPCAM_ONEDNN_KERNELS=0 turns them off.
const MKL_LABEL = { name: '_kernel', value: 'MklNameChangeOp' };
const probes = new Map<string, boolean>();

function mklAttr(b: NodeBackend) {
  return { name: MKL_LABEL.name, type: b.binding.TF_ATTR_STRING, value: MKL_LABEL.value };
}

function probe(name: string, check: (b: NodeBackend) => boolean): NodeBackend | undefined {
  const b = nativeBackend();
  if (!b || process.env.GAPCAM_ONEDNN_KERNELS === '0') return undefined;
  let ok = probes.get(name);
  if (ok === undefined) {
    try {
      ok = tf.tidy(() => check(b));
    } catch {
      ok = false;
    }
    probes.set(name, ok);
  }
  return ok ? b : undefined;
}

/** Which directly called oneDNN kernels are in use in this process (after first use). */
export function oneDnnKernels(): Record<string, boolean> {
  return Object.fromEntries(probes);
}

function convAttrs(b: NodeBackend, spec: Conv2DSpec) {
  return [floatT(b),
    { name: 'strides', type: b.binding.TF_ATTR_INT, value: [1, spec.strides[0], spec.strides[1], 1] },
    { name: 'padding', type: b.binding.TF_ATTR_STRING, value: spec.pad.toUpperCase() },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'dilations', type: b.binding.TF_ATTR_INT, value: [1, 1, 1, 1] },
    mklAttr(b)];
}

function poolAttrs(b: NodeBackend, spec: PoolSpec) {
  return [floatT(b),
    { name: 'ksize', type: b.binding.TF_ATTR_INT, value: [1, spec.filterSize[0], spec.filterSize[1], 1] },
    { name: 'strides', type: b.binding.TF_ATTR_INT, value: [1, spec.strides[0], spec.strides[1], 1] },
    { name: 'padding', type: b.binding.TF_ATTR_STRING, value: spec.pad.toUpperCase() },
    { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'workspace_enabled', type: b.binding.TF_ATTR_BOOL, value: true },
    mklAttr(b)];
}

function close(a: tf.Tensor, b: tf.Tensor, tol: number): boolean {
  return tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] <= tol;
}

/** Checks a conv + bias kernel called by name against the portable conv2d + bias (+ `then`) on a small input. */
function sameAsConvBias(b: NodeBackend, op: string, attrs: (spec: Conv2DSpec) => unknown[], then = (t: tf.Tensor) => t): boolean {
  const x = tf.randomUniform([2, 7, 6, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomUniform([3, 3, 3, 4], -1, 1, 'float32', 2) as tf.Tensor4D;
  const bias = tf.tensor1d([0.5, -1, 2, 0]);
  const spec: Conv2DSpec = { strides: [2, 1], pad: 'same' };
  const got = b.executeSingleOutput(op, attrs(spec), [x, w, bias]);
  return close(got, then(tf.add(tf.conv2d(x, w, spec.strides, spec.pad), bias)), 1e-4);
}

function mklConvBias(): NodeBackend | undefined {
  return probe('_MklNativeConv2DWithBias', (b) => sameAsConvBias(b, '_MklNativeConv2DWithBias', (spec) => convAttrs(b, spec)));
}

function fusedConvAttrs(b: NodeBackend, spec: Conv2DSpec, fusedOps: string[]) {
  return [...convAttrs(b, spec),
    { name: 'num_args', type: b.binding.TF_ATTR_INT, value: 1 },
    { name: 'TArgs', type: b.binding.TF_ATTR_TYPE, value: [b.binding.TF_FLOAT] },
    { name: 'fused_ops', type: b.binding.TF_ATTR_STRING, value: fusedOps },
    { name: 'epsilon', type: b.binding.TF_ATTR_FLOAT, value: 1e-4 }];
}

/** conv + bias + ReLU as one oneDNN primitive (list attributes: needs gapcam's engine build). Unlike TensorFlow's
 *  Relu, oneDNN's ReLU post-op maps NaN to 0 (as in Keras' oneDNN graphs); the trainer's weight checks still stop a
 *  diverging run. */
function mklFusedConv(): NodeBackend | undefined {
  return probe('_MklNativeFusedConv2D', (b) => sameAsConvBias(b, '_MklNativeFusedConv2D',
    (spec) => fusedConvAttrs(b, spec, ['BiasAdd', 'Relu']), (t) => tf.relu(t)));
}

function mklPool(): NodeBackend | undefined {
  return probe('_MklNativeMaxPool', (b) => {
    const x = tf.randomUniform([2, 5, 7, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    for (const pad of ['same', 'valid'] as const) {
      const spec: PoolSpec = { filterSize: [2, 2], strides: [2, 2], pad };
      const [y, ws] = b.executeMultipleOutputs('_MklNativeMaxPool', poolAttrs(b, spec), [x], 2);
      const want = tf.maxPool(x, spec.filterSize, spec.strides, spec.pad);
      if (!close(y, want, 0)) return false;
      const dy = tf.randomUniform(y.shape, -1, 1, 'float32', 4);
      const dx = b.executeSingleOutput('_MklNativeMaxPoolGrad', poolAttrs(b, spec), [x, y, dy, ws]);
      const ref = tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: want } as unknown as tf.NamedTensorMap, {
        filterSize: spec.filterSize, strides: spec.strides, pad: spec.pad } as unknown as tf.NamedAttrMap) as tf.Tensor;
      if (!close(dx, ref, 1e-6)) return false;
    }
    return true;
  });
}

export type Padding = 'same' | 'valid';

export interface Conv2DSpec {
  strides: [number, number];
  pad: Padding;
}

// ---- constant filters (inference) --------------------------------------------------------------------------------
// A oneDNN convolution reads its filter in a blocked layout of its own, and TensorFlow reorders the filter into it on
// every call (VGG16-GAP inference: ~16 ms a batch of 8, 2 %) unless the op says the filter is constant
// (is_filter_const): then its kernel reorders once and keeps that copy. The eager context caches one kernel per op
// name + attributes, not per filter, so two layers with the same attributes would share one kept copy. Each filter's
// data therefore gets its own id in an attribute the kernel ignores but the cache key includes (_gapcam_filter): the
// kernel for an id only ever sees that data (a tensor's data never changes; a variable's assign gives it new data and
// so a new id). Ids are never reused.
// The kept copies live as long as their kernels. When new data is about to be kept and some kept data has been freed
// since (weights replaced by training or a load, a model disposed), every cached kernel is dropped
// (clearKernelCache, gapcam's engine build: scripts/setup-engine.mjs patch 3); the live filters are kept again at
// their next use. So at most the filters of live tensors are kept. Without patch 3, or with
// GAPCAM_CONSTANT_FILTERS=0 (read at each call: the copies cost memory, as much as the convolution weights), filters
// are not passed as constants.
const filterIds = new WeakMap<object, number>();
let lastFilterId = 0;
/** The data kept since the kernels were last dropped: id → data id. */
const kept = new Map<number, object>();
let keptReleases = 0;

function kernelCacheClearer(b: NodeBackend): (() => void) | undefined {
  const clear = (b.binding as unknown as { clearKernelCache?: () => void }).clearKernelCache;
  return typeof clear === 'function' ? () => clear.call(b.binding) : undefined;
}

function isLive(b: NodeBackend, data: object): boolean {
  const tensorMap = (b as unknown as { tensorMap?: { has(dataId: object): boolean } }).tensorMap;
  return tensorMap?.has(data) ?? true;
}

/** The id under which a convolution keeps `filter`'s data as a constant (see above), recording it as kept;
 *  undefined when the engine cannot drop kept filters or GAPCAM_CONSTANT_FILTERS=0. */
export function constantFilterId(filter: tf.Tensor): number | undefined {
  const b = nativeBackend();
  const clear = b && kernelCacheClearer(b);
  if (!clear || process.env.GAPCAM_CONSTANT_FILTERS === '0') return undefined;
  const data = filter.dataId as object;
  let id = filterIds.get(data);
  if (id === undefined) {
    if ([...kept.values()].some((d) => !isLive(b, d))) {
      clear();
      kept.clear();
      keptReleases++;
    }
    id = ++lastFilterId;
    filterIds.set(data, id);
  }
  kept.set(id, data);
  return id;
}

/** How many filters are kept as constants now, and how often the kept ones were dropped (tests, diagnostics). */
export function constantFilterStats(): { kept: number; releases: number } {
  return { kept: kept.size, releases: keptReleases };
}

/** conv2d (NHWC, filter [kh, kw, in, out]) + optional bias + activation. Intermediates are freed at once, so only
 *  the result stays alive. `constantFilter`: the filter will be passed again unchanged (inference), so the kernel may
 *  keep it in oneDNN's layout (see constantFilterId). */
export function convBiasAct(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D | undefined, spec: Conv2DSpec,
  activation: 'relu' | 'linear', constantFilter = false): tf.Tensor4D {
  const b = nativeBackend();
  if (!b) {
    return tf.fused.conv2d({ x, filter, bias, strides: spec.strides, pad: spec.pad, activation });
  }
  const fused = bias && activation === 'relu' ? mklFusedConv() : undefined;
  if (fused) {
    const id = constantFilter ? constantFilterId(filter) : undefined;
    const attrs: unknown[] = fusedConvAttrs(fused, spec, ['BiasAdd', 'Relu']);
    if (id !== undefined) {
      attrs.push({ name: 'is_filter_const', type: fused.binding.TF_ATTR_BOOL, value: true },
        { name: '_gapcam_filter', type: fused.binding.TF_ATTR_INT, value: id });
    }
    return fused.executeSingleOutput('_MklNativeFusedConv2D', attrs, [x, filter, bias!]) as tf.Tensor4D;
  }
  const mkl = bias ? mklConvBias() : undefined;
  let y = mkl ? (mkl.executeSingleOutput('_MklNativeConv2DWithBias', convAttrs(mkl, spec), [x, filter, bias!]) as tf.Tensor4D)
    : conv2d(x, filter, spec);
  if (bias && !mkl) {
    const t = y;
    y = b.executeSingleOutput('BiasAdd', [floatT(b), { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' }],
      [t, bias]) as tf.Tensor4D;
    t.dispose();
  }
  if (activation === 'relu') {
    const t = y;
    y = tf.relu(t);
    t.dispose();
  }
  return y;
}

/** dL/dz for z → y = relu(z), from dL/dy and y (y > 0 ⇔ z > 0). */
export function reluGrad(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  const b = nativeBackend();
  if (b) return b.executeSingleOutput('ReluGrad', [floatT(b)], [dy, y]);
  return tf.tidy(() => tf.mul(dy, tf.cast(tf.greater(y, 0), 'float32')));
}

/** dL/dx for y = leakyRelu(x, alpha), from dL/dy and x (pass x, not y: for alpha > 0 both have the same sign). */
export function leakyReluGrad(dy: tf.Tensor, xOrY: tf.Tensor, alpha: number): tf.Tensor {
  const b = nativeBackend();
  if (b) {
    return b.executeSingleOutput('LeakyReluGrad', [floatT(b), { name: 'alpha', type: b.binding.TF_ATTR_FLOAT, value: alpha }],
      [dy, xOrY]);
  }
  return tf.tidy(() => tf.mul(dy, tf.where(tf.greater(xOrY, 0), tf.onesLike(xOrY), tf.fill(xOrY.shape, alpha))));
}

/** Sum of `g` over every axis but the last (the bias gradient of a conv or dense layer). */
export function biasAddGrad(g: tf.Tensor): tf.Tensor1D {
  const b = nativeBackend();
  if (b) {
    return b.executeSingleOutput('BiasAddGrad', [floatT(b), { name: 'data_format', type: b.binding.TF_ATTR_STRING, value: 'NHWC' }],
      [g]) as tf.Tensor1D;
  }
  return tf.sum(g, Array.from({ length: g.rank - 1 }, (_, i) => i)) as tf.Tensor1D;
}

function mklConvGrads(): NodeBackend | undefined {
  return probe('_MklNativeConv2DBackprop', (b) => {
    const spec: Conv2DSpec = { strides: [2, 1], pad: 'same' };
    const x = tf.randomUniform([2, 7, 6, 3], -1, 1, 'float32', 11) as tf.Tensor4D;
    const w = tf.randomUniform([3, 3, 3, 4], -1, 1, 'float32', 12) as tf.Tensor4D;
    const dy = tf.randomUniform([2, 4, 6, 4], -1, 1, 'float32', 13) as tf.Tensor4D;
    const conv = b.executeSingleOutput('_MklNativeConv2D', convAttrs(b, spec), [x, w]);
    if (!close(conv, tf.conv2d(x, w, spec.strides, spec.pad), 1e-4)) return false;
    const dw = b.executeSingleOutput('_MklNativeConv2DBackpropFilter', convAttrs(b, spec), [x, tf.tensor1d(w.shape, 'int32'), dy]);
    const dx = b.executeSingleOutput('_MklNativeConv2DBackpropInput', convAttrs(b, spec), [tf.tensor1d(x.shape, 'int32'), w, dy]);
    const ref = tf.grads((xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, spec.strides, spec.pad), dy)))([x, w]);
    return close(dx, ref[0], 1e-4) && close(dw, ref[1], 1e-4);
  });
}

/** Whether conv forward/backward run as oneDNN kernels called by name (probed once). */
export function oneDnnConvAvailable(): boolean {
  return mklConvGrads() !== undefined;
}

/** conv2d without bias: oneDNN by name when available (also when TensorFlow's own oneDNN rewrite is off). */
export function conv2d(x: tf.Tensor4D, filter: tf.Tensor4D, spec: Conv2DSpec): tf.Tensor4D {
  const b = mklConvGrads();
  if (b) return b.executeSingleOutput('_MklNativeConv2D', convAttrs(b, spec), [x, filter]) as tf.Tensor4D;
  return tf.conv2d(x, filter, spec.strides, spec.pad);
}

/** TensorFlow's conv backprop kernels take the other operand's shape as an int32 tensor; it lives for one call. */
function withShapeTensor<T>(shape: number[], f: (sizes: tf.Tensor1D) => T): T {
  const sizes = tf.tensor1d(shape, 'int32');
  try {
    return f(sizes);
  } finally {
    sizes.dispose();
  }
}

export function conv2dBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: number[], spec: Conv2DSpec): tf.Tensor4D {
  const b = mklConvGrads();
  if (b) return withShapeTensor(inputShape, (sizes) => b.executeSingleOutput('_MklNativeConv2DBackpropInput', convAttrs(b, spec), [sizes, filter, dy]) as tf.Tensor4D);
  return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter } as unknown as tf.NamedTensorMap, {
    strides: spec.strides, pad: spec.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, inputShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export function conv2dBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: number[], spec: Conv2DSpec): tf.Tensor4D {
  const b = mklConvGrads();
  if (b) return withShapeTensor(filterShape, (sizes) => b.executeSingleOutput('_MklNativeConv2DBackpropFilter', convAttrs(b, spec), [x, sizes, dy]) as tf.Tensor4D);
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy } as unknown as tf.NamedTensorMap, {
    strides: spec.strides, pad: spec.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export interface PoolSpec {
  filterSize: [number, number];
  strides: [number, number];
  pad: Padding;
}

/** Max pooling for training: the output and, on oneDNN, the workspace its gradient reads (dispose both). The
 *  workspace is a uint8 tensor that tfjs labels int32; it is only ever handed back to maxPoolGrad. */
export function maxPool(x: tf.Tensor4D, spec: PoolSpec): { y: tf.Tensor4D; workspace?: tf.Tensor } {
  const b = mklPool();
  if (b) {
    const [y, workspace] = b.executeMultipleOutputs('_MklNativeMaxPool', poolAttrs(b, spec), [x], 2);
    return { y: y as tf.Tensor4D, workspace };
  }
  return { y: tf.maxPool(x, spec.filterSize, spec.strides, spec.pad) };
}

export function maxPoolGrad(dy: tf.Tensor4D, input: tf.Tensor4D, output: tf.Tensor4D, spec: PoolSpec,
  workspace?: tf.Tensor): tf.Tensor4D {
  const b = workspace ? mklPool() : undefined;
  if (b) return b.executeSingleOutput('_MklNativeMaxPoolGrad', poolAttrs(b, spec), [input, output, dy, workspace!]) as tf.Tensor4D;
  return tf.engine().runKernel('MaxPoolGrad', { dy, input, output } as unknown as tf.NamedTensorMap, {
    filterSize: spec.filterSize, strides: spec.strides, pad: spec.pad, dimRoundingMode: undefined,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

export function avgPool(x: tf.Tensor4D, spec: PoolSpec): tf.Tensor4D {
  return tf.avgPool(x, spec.filterSize, spec.strides, spec.pad);
}

export function avgPoolGrad(dy: tf.Tensor4D, input: tf.Tensor4D, spec: PoolSpec): tf.Tensor4D {
  return tf.engine().runKernel('AvgPoolGrad', { dy, input } as unknown as tf.NamedTensorMap, {
    filterSize: spec.filterSize, strides: spec.strides, pad: spec.pad,
  } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

/**
 * Softmax cross-entropy on logits [N, C] against targets [N, C] (one-hot or soft; each row sums to 1).
 * Returns the mean loss (a scalar) and dLoss/dLogits = (softmax(logits) - targets) / N.
 */
export function softmaxCrossEntropy(logits: tf.Tensor2D, targets: tf.Tensor2D): { loss: tf.Scalar; dLogits: tf.Tensor2D } {
  const n = logits.shape[0];
  const b = nativeBackend();
  if (b) {
    const [perExample, backprop] = b.executeMultipleOutputs('SoftmaxCrossEntropyWithLogits', [floatT(b)], [logits, targets], 2);
    const loss = tf.mean(perExample) as tf.Scalar;
    const dLogits = tf.div(backprop, n) as tf.Tensor2D;
    perExample.dispose();
    backprop.dispose();
    return { loss, dLogits };
  }
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    const loss = tf.neg(tf.mean(tf.sum(tf.mul(targets, logp), 1))) as tf.Scalar;
    const dLogits = tf.div(tf.sub(tf.exp(logp), targets), n) as tf.Tensor2D;
    return { loss, dLogits };
  });
}
