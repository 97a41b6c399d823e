// Splitting a Layers model at a target layer into a features model (input → target activations) and a head
// (target activations → pre-softmax class scores), the tfjs-examples visualize-convnet/cam.js way: the head is
// rebuilt by re-applying the original layers (shared weights) on a new Input, so gradients with respect to the
// target's activations are one tf.grad over the head — no hooks. Works on any single-input, single-output
// functional or Sequential model, including DAGs: tensors from before the target that the head still needs (skip
// connections) become extra outputs of the features model and extra inputs of the head.
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { activationOf, isSoftmaxLayer } from '../models/layers.js';

/** The node bookkeeping the public typings leave out. */
interface GraphNode {
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
}
type NodedLayer = tf.layers.Layer & { inboundNodes: GraphNode[] };

interface PlacedNode {
  layer: NodedLayer;
  inputs: tf.SymbolicTensor[];
  outputs: tf.SymbolicTensor[];
}

/** The model's own nodes in topological order (nodes added later by re-applying its layers elsewhere are skipped). */
export function modelNodes(model: tf.LayersModel): PlacedNode[] {
  const known = new Set<number>(model.inputs.map((t) => t.id));
  const done = new Set<GraphNode>();
  const order: PlacedNode[] = [];
  const layers = model.layers as NodedLayer[];
  let progress = true;
  while (progress) {
    progress = false;
    for (const layer of layers) {
      for (const node of layer.inboundNodes ?? []) {
        if (done.has(node) || node.inputTensors.length === 0) continue;
        if (!node.inputTensors.every((t) => known.has(t.id))) continue;
        done.add(node);
        for (const t of node.outputTensors) known.add(t.id);
        order.push({ layer, inputs: node.inputTensors, outputs: node.outputTensors });
        progress = true;
      }
    }
  }
  return order;
}

/** The symbolic input and output tensors of `name`'s own node in `model` (a layer re-applied elsewhere, e.g. by
 *  splitAtLayer, has several inbound nodes and tfjs's `layer.output` then throws). */
export function layerTensorsIn(model: tf.LayersModel, name: string): { inputs: tf.SymbolicTensor[]; outputs: tf.SymbolicTensor[] } | undefined {
  const node = modelNodes(model).find((n) => n.layer.name === name);
  return node ? { inputs: node.inputs, outputs: node.outputs } : undefined;
}

/** The layers whose output is a 4-D [N, h, w, C] map, in topological order. */
export function spatialLayers(model: tf.LayersModel): string[] {
  const names: string[] = [];
  for (const n of modelNodes(model)) {
    if (n.outputs.length === 1 && n.outputs[0].shape.length === 4 && !names.includes(n.layer.name)) names.push(n.layer.name);
  }
  return names;
}

/** The last layer with a spatial (4-D) output: the default target of gradient methods. */
export function lastSpatialLayer(model: tf.LayersModel): string {
  const names = spatialLayers(model);
  if (names.length === 0) throw new UserError(`model '${model.name}': no layer has a 4-D [N, h, w, C] output to map`);
  return names[names.length - 1];
}

export interface SplitModel {
  /** The target layer's name. */
  layer: string;
  /** input → [target activations, ...extra tensors the head needs]. */
  features: tf.LayersModel;
  /** [target activations, ...extras] → the tensor feeding the final linear step (or the logits themselves). */
  head: tf.LayersModel;
  /** When the model ends in a Dense with softmax, its kernel and bias, applied here without the softmax. */
  finalDense?: { kernel: tf.Tensor2D; bias?: tf.Tensor1D };
  numClasses: number;
}

const cache = new WeakMap<tf.LayersModel, Map<string, SplitModel>>();

/** Splits `model` at `layerName` (cached per model and layer). */
export function splitAtLayer(model: tf.LayersModel, layerName: string): SplitModel {
  let perModel = cache.get(model);
  if (!perModel) cache.set(model, (perModel = new Map()));
  const hit = perModel.get(layerName);
  if (hit) return hit;
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UserError(`model '${model.name}': expected one input and one output, found ${model.inputs.length} and ${model.outputs.length}`);
  }
  const nodes = modelNodes(model);
  const targetNodes = nodes.filter((n) => n.layer.name === layerName);
  if (targetNodes.length === 0) {
    const spatial = spatialLayers(model);
    throw new UserError(`--layer: '${layerName}' is not a layer of model '${model.name}' (spatial layers: ${spatial.slice(-6).join(', ')}${spatial.length > 6 ? ', …' : ''})`);
  }
  if (targetNodes.length > 1) throw new UserError(`--layer: '${layerName}' is applied ${targetNodes.length} times in model '${model.name}'; pick a layer used once`);
  const target = targetNodes[0];
  if (target.outputs.length !== 1 || target.outputs[0].shape.length !== 4) {
    throw new UserError(`--layer: '${layerName}' outputs shape [${target.outputs[0]?.shape.join(', ')}]; expected a 4-D [N, h, w, C] map`);
  }
  const targetOut = target.outputs[0];

  // Where the logits are: strip a final softmax (Softmax/Activation layer, or a Dense's own softmax).
  let outTensor = model.outputs[0];
  const producer = (id: number) => nodes.find((n) => n.outputs.some((t) => t.id === id));
  let last = producer(outTensor.id);
  if (last && isSoftmaxLayer(last.layer) && last.inputs.length === 1) {
    outTensor = last.inputs[0];
    last = producer(outTensor.id);
  }
  let finalDense: SplitModel['finalDense'];
  if (last && last.layer.getClassName() === 'Dense' && activationOf(last.layer) === 'softmax' && last.layer !== target.layer) {
    const w = last.layer.getWeights();
    finalDense = { kernel: w[0] as tf.Tensor2D, bias: w[1] as tf.Tensor1D | undefined };
    outTensor = last.inputs[0];
  }

  // Re-apply every node downstream of the target on new inputs.
  const mapped = new Map<number, tf.SymbolicTensor>();
  const headInput = tf.input({ shape: targetOut.shape.slice(1) as number[], name: `${layerName}_activations` });
  mapped.set(targetOut.id, headInput);
  const downstream = new Set<number>([targetOut.id]);
  const extras: { original: tf.SymbolicTensor; input: tf.SymbolicTensor }[] = [];
  const targetIndex = nodes.indexOf(target);
  for (const node of nodes.slice(targetIndex + 1)) {
    if (!node.inputs.some((t) => downstream.has(t.id))) continue;
    const ins = node.inputs.map((t) => {
      const m = mapped.get(t.id);
      if (m) return m;
      const extra = tf.input({ shape: t.shape.slice(1) as number[], name: `${layerName}_extra_${extras.length}` });
      extras.push({ original: t, input: extra });
      mapped.set(t.id, extra);
      return extra;
    });
    const out = node.layer.apply(ins.length === 1 ? ins[0] : ins);
    const outs = Array.isArray(out) ? out : [out];
    node.outputs.forEach((t, i) => {
      mapped.set(t.id, outs[i] as tf.SymbolicTensor);
      downstream.add(t.id);
    });
    if (node.outputs.some((t) => t.id === outTensor.id)) break;
  }
  const headOut = mapped.get(outTensor.id);
  if (!headOut) throw new UserError(`--layer: the model's output does not depend on '${layerName}'; pick a layer on the path to the output`);
  const features = tf.model({ inputs: model.inputs, outputs: [targetOut, ...extras.map((e) => e.original)] });
  const head = tf.model({ inputs: [headInput, ...extras.map((e) => e.input)], outputs: headOut });
  const outShape = model.outputs[0].shape;
  const split: SplitModel = { layer: layerName, features, head, finalDense, numClasses: outShape[outShape.length - 1] as number };
  perModel.set(layerName, split);
  return split;
}

/** Runs the features model: [activations, ...extras]. */
export function runFeatures(split: SplitModel, input: tf.Tensor4D): tf.Tensor[] {
  const out = split.features.predict(input);
  return Array.isArray(out) ? out : [out];
}

/** Pre-softmax class scores [N, numClasses] from target activations (differentiable; use inside tf.grad/tidy). */
export function runHead(split: SplitModel, activations: tf.Tensor, extras: tf.Tensor[] = []): tf.Tensor2D {
  const out = split.head.apply(extras.length ? [activations, ...extras] : activations, { training: false }) as tf.Tensor;
  let logits = (out.rank === 2 ? out : out.reshape([out.shape[0], -1])) as tf.Tensor2D;
  if (split.finalDense) {
    logits = tf.matMul(logits, split.finalDense.kernel);
    if (split.finalDense.bias) logits = tf.add(logits, split.finalDense.bias);
  }
  return logits;
}
