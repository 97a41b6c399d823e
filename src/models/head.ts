// Recognising a CAM-ready head on any Layers model: GAP → Dense (the CAM paper's VGGnet-GAP) or conv → GAP
// (NiN / darknet-tiny). The result names the feature, pooling and classifier layers CAM code reads.
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { HeadKind, ModelMeta, CamModel } from './types.js';
import type { PreprocessMode } from '../data/types.js';
import { activationOf, isSoftmaxLayer } from './layers.js';

/** A layer as tfjs types it, plus the node bookkeeping the public typings leave out. */
type AnyLayer = tf.layers.Layer;

export interface DetectedHead {
  headKind: HeadKind;
  featureLayer: string;
  poolingLayer: string;
  classifierLayer?: string;
  outputIsSoftmax: boolean;
  /** Number of classes the head scores. */
  numClasses: number;
}

/** The single layer feeding `layer` (undefined for an input layer or a layer with several inputs). */
export function inboundLayer(layer: AnyLayer): AnyLayer | undefined {
  const nodes = layer.inboundNodes;
  if (!nodes || nodes.length === 0) return undefined;
  const ins = nodes[0].inboundLayers;
  return ins.length === 1 ? ins[0] : undefined;
}

const GAP_CLASSES = new Set(['GlobalAveragePooling2D']);
const PASS_THROUGH = new Set(['Dropout', 'SpatialDropout2D', 'GaussianDropout', 'AlphaDropout', 'GaussianNoise']);

/** Explains why a model is not CAM-ready, or returns its head. Never throws. */
export function detectCamHead(model: tf.LayersModel): DetectedHead | string {
  if (model.outputs.length !== 1) return `it has ${model.outputs.length} outputs (expected 1)`;
  let layer: AnyLayer | undefined = model.outputs[0].sourceLayer as AnyLayer;
  let outputIsSoftmax = false;
  if (isSoftmaxLayer(layer)) {
    outputIsSoftmax = true;
    layer = inboundLayer(layer);
    if (!layer) return 'its softmax layer has no single input';
  }
  let classifierLayer: string | undefined;
  if (layer.getClassName() === 'Dense') {
    const act = activationOf(layer) ?? 'linear';
    if (act === 'softmax') outputIsSoftmax = true;
    else if (act !== 'linear') return `its classifier '${layer.name}' has activation '${act}' (expected linear or softmax)`;
    if (outputIsSoftmax && act === 'softmax' && isSoftmaxLayer(model.outputs[0].sourceLayer as AnyLayer)) {
      return `it applies softmax twice ('${layer.name}' and '${model.outputs[0].sourceLayer.name}')`;
    }
    classifierLayer = layer.name;
    layer = inboundLayer(layer);
    while (layer && PASS_THROUGH.has(layer.getClassName())) layer = inboundLayer(layer);
    if (!layer || !GAP_CLASSES.has(layer.getClassName())) {
      return `its classifier '${classifierLayer}' is fed by ${layer ? `'${layer.name}' (${layer.getClassName()})` : 'several layers'}, not by GlobalAveragePooling2D`;
    }
  } else if (!GAP_CLASSES.has(layer.getClassName())) {
    return `its output layer '${layer.name}' is ${layer.getClassName()} (expected Dense after GlobalAveragePooling2D, or GlobalAveragePooling2D after a class-score conv)`;
  }
  const pooling = layer;
  const feature = inboundLayer(pooling);
  if (!feature) return `its pooling layer '${pooling.name}' has no single input layer`;
  const fshape = feature.outputShape as number[];
  if (!Array.isArray(fshape) || fshape.length !== 4) return `the layer '${feature.name}' feeding '${pooling.name}' is not a 4-D feature map`;
  const outShape = model.outputs[0].shape;
  const numClasses = outShape[outShape.length - 1] ?? 0;
  if (classifierLayer) {
    return { headKind: 'gap-dense', featureLayer: feature.name, poolingLayer: pooling.name, classifierLayer, outputIsSoftmax, numClasses };
  }
  if (fshape[3] !== numClasses) return `its class-score map '${feature.name}' has ${fshape[3]} channels but the model outputs ${numClasses}`;
  return { headKind: 'conv-gap', featureLayer: feature.name, poolingLayer: pooling.name, outputIsSoftmax, numClasses };
}

export interface AsCamModelOptions {
  classNames?: string[];
  preprocessing?: PreprocessMode;
  /** Needed only when the model's input has no fixed height/width. */
  inputSize?: [number, number];
  recipe?: string;
  backbone?: string;
}

/** The model's fixed input [height, width]; a UserError when it is not fixed and none is given. */
export function inputSizeOf(model: tf.LayersModel, fallback?: [number, number]): [number, number] {
  const shape = model.inputs[0].shape;
  const h = shape[1];
  const w = shape[2];
  if (typeof h === 'number' && typeof w === 'number') return [h, w];
  if (fallback) return fallback;
  throw new UserError(`model '${model.name}': input size is not fixed (shape [${shape.map(String).join(', ')}]); give the input size`);
}

export function defaultClassNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `class_${i}`);
}

/** Wraps a model whose head is already CAM-ready (GAP → Dense, or conv → GAP) with its meta; a UserError otherwise. */
export function asCamModel(model: tf.LayersModel, opts: AsCamModelOptions = {}): CamModel {
  const head = detectCamHead(model);
  if (typeof head === 'string') {
    throw new UserError(`model '${model.name}' is not CAM-ready: ${head}; cut it and add a GAP head with toGap(model, {cutAt, classes})`);
  }
  const classNames = opts.classNames ?? defaultClassNames(head.numClasses);
  if (classNames.length !== head.numClasses) {
    throw new UserError(`model '${model.name}': expected ${head.numClasses} class names (one per output), got ${classNames.length}`);
  }
  const meta: ModelMeta = {
    classNames,
    preprocessing: opts.preprocessing ?? 'unit',
    inputSize: inputSizeOf(model, opts.inputSize),
    headKind: head.headKind,
    featureLayer: head.featureLayer,
    poolingLayer: head.poolingLayer,
    ...(head.classifierLayer ? { classifierLayer: head.classifierLayer } : {}),
    outputIsSoftmax: head.outputIsSoftmax,
    ...(opts.recipe ? { recipe: opts.recipe } : {}),
    ...(opts.backbone ? { backbone: opts.backbone } : {}),
  };
  return { model, meta };
}
