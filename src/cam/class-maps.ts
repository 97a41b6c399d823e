// The exact CAM core (Zhou et al. 2016), shared by `gapcam cam`, localization evaluation and feature extraction.
//
// One forward pass through a sub-model that outputs both the last spatial feature map and the classifier's input
// gives, for every requested class c:
//   gap-dense (feature → GAP → Dense):  M_c(x, y) = Σ_k w_k^c f_k(x, y)   (Dense kernel column c; bias excluded)
//   conv-gap  (class-score conv → GAP): M_c(x, y) = f_c(x, y)              (channel c of the class-score map)
// and the pre-softmax logits S_c, so that mean_xy M_c + b_c = S_c (b_c = 0 for conv-gap, whose bias is inside f_c).
import * as tf from '@tensorflow/tfjs';
import type { CamModel } from '../models/types.js';
import { UserError } from '../errors.js';
import { layerTensorsIn } from './split.js';
import { fastPredictor, fusedStepUnsupported } from '../perf/sequential-step.js';

export { normalizeArray, resizeBilinearArray } from './map-arrays.js';

/** Classes to map, one list per image (all lists the same length K), or a function choosing them from the logits
 *  of the same forward pass (e.g. the top-k), so that choosing by score costs no second pass. */
export type ClassSelection = number[][] | ((logits: tf.Tensor2D) => number[][]);

export interface ClassActivationResult {
  /** [N, numClasses] pre-softmax class scores. */
  logits: tf.Tensor2D;
  /** [N, h, w, K] raw (unnormalised, no ReLU) class activation maps at feature-map resolution; channel j of image i
   *  is the map of class classIds[i][j]. */
  maps: tf.Tensor4D;
  /** The class ids actually mapped, per image (the resolved selection). */
  classIds: number[][];
}

interface CamGraph {
  /** input → [feature map, classifier input (gap-dense) or pooled class scores (conv-gap)] */
  sub: tf.LayersModel;
  /** gap-dense: Dense kernel [C, numClasses] and bias [numClasses] (owned by the model; never disposed here). */
  kernel?: tf.Tensor2D;
  bias?: tf.Tensor1D;
  numClasses: number;
  /** The same two outputs in two parts, when input → feature map is a chain the fast forward covers (src/perf):
   *  the feature map from fastPredictor, then the few layers from it to the second output. */
  split?: { features: (images: tf.Tensor4D) => tf.Tensor; tail: tf.layers.Layer[] };
}

const graphs = new WeakMap<tf.LayersModel, Map<string, CamGraph>>();

function layerOf(model: tf.LayersModel, name: string | undefined, what: string): tf.layers.Layer {
  if (!name) throw new UserError(`model meta: ${what} is not set; expected a layer name of model '${model.name}'`);
  try {
    return model.getLayer(name);
  } catch {
    throw new UserError(`model meta: ${what} '${name}' is not a layer of model '${model.name}'`);
  }
}

function singleOutput(model: tf.LayersModel, layer: tf.layers.Layer): tf.SymbolicTensor {
  const out = layerTensorsIn(model, layer.name)?.outputs ?? [];
  if (out.length !== 1) throw new UserError(`layer '${layer.name}': expected one output, found ${out.length}`);
  return out[0];
}

function singleInput(model: tf.LayersModel, layer: tf.layers.Layer): tf.SymbolicTensor {
  const inp = layerTensorsIn(model, layer.name)?.inputs ?? [];
  if (inp.length !== 1) throw new UserError(`layer '${layer.name}': expected one input, found ${inp.length}`);
  return inp[0];
}

function splitForward(split: NonNullable<CamGraph['split']>, input: tf.Tensor4D): tf.Tensor[] {
  const feature = split.features(input);
  // Applied to concrete tensors, the layers compute without adding nodes to the model's graph.
  let x = feature;
  for (const layer of split.tail) x = layer.apply(x, { training: false }) as tf.Tensor;
  return [feature, x];
}

/** input → feature as a fast chain, and feature → `to` through the single-input layers between them;
 *  undefined when either part is not a plain chain. */
function splitAtFeature(model: tf.LayersModel, feature: tf.SymbolicTensor, to: tf.SymbolicTensor): CamGraph['split'] {
  const between: tf.layers.Layer[] = [];
  let t = to;
  while (t !== feature) {
    const node = t as unknown as { sourceLayer: tf.layers.Layer; inputs: tf.SymbolicTensor[] };
    if (!node.inputs || node.inputs.length !== 1 || between.length > 16) return undefined;
    between.unshift(node.sourceLayer);
    t = node.inputs[0];
  }
  const chain = tf.model({ inputs: model.inputs, outputs: feature });
  if (fusedStepUnsupported(chain)) return undefined;
  return { features: fastPredictor(chain), tail: between };
}

/** Builds (once per model, cached) the two-output sub-model sharing the model's layers and weights. */
export function camGraph(camModel: CamModel): CamGraph {
  const { model, meta } = camModel;
  const key = `${meta.headKind}|${meta.featureLayer}|${meta.poolingLayer}|${meta.classifierLayer ?? ''}`;
  let perModel = graphs.get(model);
  if (!perModel) graphs.set(model, (perModel = new Map()));
  const cached = perModel.get(key);
  if (cached) return cached;

  const feature = singleOutput(model, layerOf(model, meta.featureLayer, 'featureLayer'));
  if (feature.shape.length !== 4) {
    throw new UserError(`model meta: featureLayer '${meta.featureLayer}' must output a 4-D [N, h, w, C] map; found shape [${feature.shape.join(', ')}]`);
  }
  let graph: CamGraph;
  if (meta.headKind === 'gap-dense') {
    const dense = layerOf(model, meta.classifierLayer, 'classifierLayer');
    const weights = dense.getWeights();
    if (weights.length < 1 || weights[0].rank !== 2) {
      throw new UserError(`classifierLayer '${dense.name}': expected a Dense layer with a 2-D kernel; found ${weights.length} weights`);
    }
    const kernel = weights[0] as tf.Tensor2D;
    const channels = feature.shape[3];
    if (kernel.shape[0] !== channels) {
      throw new UserError(`classifierLayer '${dense.name}': kernel has ${kernel.shape[0]} inputs but featureLayer '${meta.featureLayer}' has ${channels} channels`);
    }
    const numClasses = kernel.shape[1];
    const bias = (weights[1] as tf.Tensor1D | undefined) ?? undefined;
    const classifierInput = singleInput(model, dense);
    const sub = tf.model({ inputs: model.inputs, outputs: [feature, classifierInput] });
    graph = { sub, kernel, bias, numClasses, split: splitAtFeature(model, feature, classifierInput) };
  } else if (meta.headKind === 'conv-gap') {
    const pooled = singleOutput(model, layerOf(model, meta.poolingLayer, 'poolingLayer'));
    const numClasses = feature.shape[3] as number;
    if (pooled.shape[pooled.shape.length - 1] !== numClasses) {
      throw new UserError(`poolingLayer '${meta.poolingLayer}': outputs ${pooled.shape[pooled.shape.length - 1]} scores but featureLayer '${meta.featureLayer}' has ${numClasses} channels`);
    }
    const sub = tf.model({ inputs: model.inputs, outputs: [feature, pooled] });
    graph = { sub, numClasses, split: splitAtFeature(model, feature, pooled) };
  } else {
    throw new UserError(`model meta: headKind '${String(meta.headKind)}' is not one of gap-dense, conv-gap`);
  }
  perModel.set(key, graph);
  return graph;
}

/** Checks a per-image class selection (same count for every image, ids in range); returns that count. */
export function checkSelection(ids: number[][], n: number, numClasses: number): number {
  if (ids.length !== n) throw new UserError(`class selection: expected ${n} lists (one per image), found ${ids.length}`);
  const k = ids[0]?.length ?? 0;
  if (k === 0) throw new UserError('class selection: expected at least one class per image, found none');
  for (const row of ids) {
    if (row.length !== k) throw new UserError(`class selection: expected ${k} classes for every image, found a list of ${row.length}`);
    for (const c of row) {
      if (!Number.isInteger(c) || c < 0 || c >= numClasses) {
        throw new UserError(`class selection: class id ${c} is out of range 0..${numClasses - 1}`);
      }
    }
  }
  return k;
}

/** CAMs for the selected classes and the logits, from ONE forward pass. The caller owns (disposes) both tensors. */
export function classActivationMaps(camModel: CamModel, input: tf.Tensor4D, classIds: ClassSelection): ClassActivationResult {
  const graph = camGraph(camModel);
  const n = input.shape[0];
  let resolved: number[][] = [];
  const out = tf.tidy(() => {
    const [feature, head] = graph.split ? splitForward(graph.split, input) : graph.sub.predict(input) as tf.Tensor[];
    const f = feature as tf.Tensor4D;
    const [, h, w, channels] = f.shape;
    let logits: tf.Tensor2D;
    if (graph.kernel) {
      const pooledIn = (head.rank === 2 ? head : head.reshape([n, -1])) as tf.Tensor2D;
      logits = tf.matMul(pooledIn, graph.kernel);
      if (graph.bias) logits = tf.add(logits, graph.bias);
    } else {
      logits = (head.rank === 2 ? head : head.reshape([n, -1])) as tf.Tensor2D;
    }
    resolved = typeof classIds === 'function' ? classIds(logits) : classIds;
    const k = checkSelection(resolved, n, graph.numClasses);
    const idx = tf.tensor2d(resolved.flat(), [n, k], 'int32');
    let maps: tf.Tensor4D;
    if (graph.kernel) {
      // per-image weight columns: kernel^T [numClasses, C] gathered by id → [N, K, C] → [N, C, K]
      const cols = tf.gather(graph.kernel.transpose(), idx).transpose([0, 2, 1]) as tf.Tensor3D;
      const flat = f.reshape([n, h * w, channels]) as tf.Tensor3D;
      maps = tf.matMul(flat, cols).reshape([n, h, w, k]);
    } else {
      // channel selection per image: [N, C, h, w] gathered on axis 1 with batchDims 1 → [N, K, h, w]
      const chw = f.transpose([0, 3, 1, 2]);
      maps = tf.gather(chw, idx, 1, 1).transpose([0, 2, 3, 1]) as tf.Tensor4D;
    }
    return { logits, maps };
  });
  return { logits: out.logits, maps: out.maps, classIds: resolved };
}

/** The k best classes per row, best first, read from `logits` (synchronously). */
export function topK(logits: tf.Tensor2D, k: number): { ids: number[][]; scores: number[][] } {
  const kk = Math.min(k, logits.shape[1]);
  const { values, indices } = tf.topk(logits, kk, true);
  const ids = (indices.arraySync() as number[][]);
  const scores = (values.arraySync() as number[][]);
  values.dispose();
  indices.dispose();
  return { ids, scores };
}

/** A ClassSelection choosing each image's k best classes from the same forward pass. */
export function topKSelection(k: number): (logits: tf.Tensor2D) => number[][] {
  return (logits) => topK(logits, k).ids;
}

export interface UpsampleOptions {
  /** Default false (tf.image.resizeBilinear's default). */
  alignCorners?: boolean;
  /** Default TRUE, unlike tf.image.resizeBilinear: pixel centres at +0.5 as in cv2.resize / PIL / MATLAB imresize,
   *  which the CAM paper and wsolevaluation use. With tfjs's default (false) the upsampled map is shifted by half a
   *  feature-map cell towards the bottom right (8 px for 14 → 224). */
  halfPixelCenters?: boolean;
}

/** Bilinear resize of [N, h, w, K] maps to [N, H, W, K]. Conventions: see UpsampleOptions (by default
 *  alignCorners = false, halfPixelCenters = true). */
export function upsampleMaps(maps: tf.Tensor4D, size: [number, number], options: UpsampleOptions = {}): tf.Tensor4D {
  const alignCorners = options.alignCorners ?? false;
  const halfPixelCenters = alignCorners ? false : options.halfPixelCenters ?? true;
  return tf.image.resizeBilinear(maps, size, alignCorners, halfPixelCenters);
}

/** Min-max normalisation of every map (per image, per channel, over h × w) to [0, 1]. A constant map becomes all
 *  zeros. With `relu`, negatives are clipped first (so the minimum is at least 0, as in Grad-CAM). */
export function normalizeMaps(maps: tf.Tensor4D, options: { relu?: boolean } = {}): tf.Tensor4D {
  return tf.tidy(() => {
    const m = options.relu ? tf.relu(maps) : maps;
    const min = m.min([1, 2], true);
    const range = m.max([1, 2], true).sub(min);
    const safe = tf.where(range.greater(0), range, tf.onesLike(range));
    return tf.where(range.greater(0), m.sub(min).div(safe), tf.zerosLike(m)) as tf.Tensor4D;
  });
}

/** Convenience: CAMs upsampled to the model input size and min-max normalised, [N, H, W, K] in [0, 1]. */
export function normalizedInputSizeMaps(camModel: CamModel, input: tf.Tensor4D, classIds: ClassSelection, options: UpsampleOptions & { relu?: boolean } = {}): ClassActivationResult {
  const res = classActivationMaps(camModel, input, classIds);
  const maps = tf.tidy(() => normalizeMaps(upsampleMaps(res.maps, [input.shape[1], input.shape[2]], options), options));
  res.maps.dispose();
  return { logits: res.logits, maps, classIds: res.classIds };
}
