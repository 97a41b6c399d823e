// FC → GAP surgery (Zhou et al., CVPR 2016, "VGGnet-GAP"): keep any Layers model up to a named layer, then add
//   gap_conv        Conv2D(convFilters, kernelSize, stride 1, same padding, ReLU)   ← the CAM's feature map f_k
//   gap_pool        GlobalAveragePooling2D
//   gap_dropout     Dropout (only when `dropout` > 0)
//   gap_classifier  Dense(classes), LINEAR: its outputs are the logits S_c = Σ_k w_k^c mean(f_k) + b_c
//   gap_softmax     Activation('softmax'): the model's output (meta.outputIsSoftmax = true)
// The classifier is linear and the softmax a separate layer so that CAM code can read pre-softmax logits from
// `gap_classifier` and the class weights w_k^c from its kernel. The kept part is a copy (new variables holding
// bit-identical values), so the source model can be disposed or trained on without touching the result.
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { PreprocessMode } from '../data/types.js';
import type { CamModel, ModelMeta } from './types.js';
import { inputSizeOf, defaultClassNames } from './head.js';
import { BACKBONES, isBackboneName } from './registry.js';
import { identifyKerasApplication } from './keras-apps.js';

export { asCamModel, detectCamHead } from './head.js';

/** Names of the layers toGap adds (CAM, training and export code find the head through meta.json, which records
 *  them; a name already used by a kept layer gets a suffix, e.g. gap_conv_1 when re-heading a gapcam model). */
export const GAP_LAYER_NAMES = {
  conv: 'gap_conv',
  pool: 'gap_pool',
  dropout: 'gap_dropout',
  classifier: 'gap_classifier',
  softmax: 'gap_softmax',
} as const;

export interface ToGapOptions {
  /** Keep the graph up to (and including) this layer. Default: the backbone's cut layer when the model is a
   *  registered backbone (by `backbone` or the model's name, e.g. vgg16 → block5_conv3). */
  cutAt?: string;
  /** Filters of the added conv (default 1024, as the paper); 0 adds no conv (GAP straight on the cut layer). */
  convFilters?: number;
  /** Kernel size of the added conv (default 3). */
  kernelSize?: number;
  /** Number of classes; default classNames.length. */
  classes?: number;
  classNames?: string[];
  /** Dropout rate between pooling and classifier (none when absent or 0). */
  dropout?: number;
  /** Seed of the new layers' initialisers. */
  seed?: number;
  /** Default: the registered backbone's mode, else the Keras application's, else 'unit'. */
  preprocessing?: PreprocessMode;
  backbone?: string;
  recipe?: string;
  /** Needed only when the model's input size is not fixed. */
  inputSize?: [number, number];
  /** Rebuild the kept part for this [height, width, channels] input (a model file trained at another size). */
  inputShape?: [number, number, number];
}

function layerNamesHint(model: tf.LayersModel): string {
  const maps = model.layers.filter((l) => {
    const s = l.outputShape as unknown;
    return Array.isArray(s) && s.length === 4 && !Array.isArray(s[0]);
  });
  const tail = maps.slice(-4).map((l) => l.name);
  return tail.length ? `; 4-D layers near the end: ${tail.join(', ')}` : '';
}

/** The config of a functional model with its (only) input layer rebuilt for [height, width, channels]. */
function withInputShape(config: tf.serialization.ConfigDict, inputShape: [number, number, number], name: string): tf.serialization.ConfigDict {
  // tfjs' getConfig() form: {className, config: {batchInputShape, …}} per layer.
  type LayerCfg = { className: string; config: Record<string, unknown> };
  const layers = (config as { layers?: LayerCfg[] }).layers ?? [];
  const inputs = layers.filter((l) => l.className === 'InputLayer');
  if (inputs.length !== 1) throw new UserError(`--input-size: model '${name}' has ${inputs.length} input layers; expected one to resize`);
  inputs[0].config = { ...inputs[0].config, batchInputShape: [null, ...inputShape] };
  return config;
}

/** An independent copy of `model` up to the output of layer `cutAt` (same names, bit-identical weights); with
 *  `inputShape`, rebuilt for that input (the kept part must be convolutional: its weights do not depend on it). */
export function truncateModel(model: tf.LayersModel, cutAt: string, inputShape?: [number, number, number]): tf.LayersModel {
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(cutAt);
  } catch {
    throw new UserError(`--cut-at: model '${model.name}' has no layer '${cutAt}'${layerNamesHint(model)}`);
  }
  let out: tf.SymbolicTensor;
  try {
    out = layer.output as tf.SymbolicTensor;
  } catch {
    throw new UserError(`--cut-at: layer '${cutAt}' is used at several places in the graph; expected a layer with one output`);
  }
  if (Array.isArray(out)) throw new UserError(`--cut-at: layer '${cutAt}' has several outputs; expected one feature map`);
  const sub = tf.model({ inputs: model.inputs, outputs: out, name: `${model.name}_to_${cutAt}` });
  let config = sub.getConfig() as unknown as tf.serialization.ConfigDict;
  const same = inputShape && model.inputs[0].shape.slice(1).every((d, i) => d === inputShape[i]);
  if (inputShape && !same) config = withInputShape(config, inputShape, model.name);
  const clone = tf.LayersModel.fromConfig(tf.LayersModel, config) as tf.LayersModel;
  try {
    clone.setWeights(sub.getWeights());
  } catch (err) {
    clone.dispose();
    throw new UserError(`--input-size: model '${model.name}' cut at '${cutAt}' cannot be rebuilt for input ${inputShape?.join('×')}: ${(err as Error).message.split('\n')[0]}`);
  }
  return clone;
}

/** The FC→GAP surgery on any Layers model (see the file header for the layers added). */
export function toGap(model: tf.LayersModel, opts: ToGapOptions): CamModel {
  const backbone = opts.backbone ?? (isBackboneName(model.name) ? model.name : undefined);
  const spec = backbone && isBackboneName(backbone) ? BACKBONES[backbone] : undefined;
  const cutAt = opts.cutAt ?? spec?.defaultCutLayer ?? identifyKerasApplication(model)?.cutLayer;
  if (!cutAt) throw new UserError(`--cut-at: model '${model.name}' is not a registered backbone or a known Keras application, so name the layer to cut at${layerNamesHint(model)}`);
  const classes = opts.classes ?? opts.classNames?.length;
  if (!classes || !Number.isInteger(classes) || classes < 1) {
    throw new UserError(`--classes: expected a positive integer number of classes; got ${opts.classes ?? 'none'}`);
  }
  const classNames = opts.classNames ?? defaultClassNames(classes);
  if (classNames.length !== classes) throw new UserError(`--classes: ${classes} classes but ${classNames.length} class names`);
  const convFilters = opts.convFilters ?? 1024;
  const kernelSize = opts.kernelSize ?? 3;
  if (!Number.isInteger(convFilters) || convFilters < 0) throw new UserError(`--conv-filters: expected an integer ≥ 0; got ${convFilters}`);
  if (!Number.isInteger(kernelSize) || kernelSize < 1) throw new UserError(`--kernel-size: expected a positive integer; got ${kernelSize}`);
  if (opts.dropout !== undefined && !(opts.dropout >= 0 && opts.dropout < 1)) throw new UserError(`--dropout: expected a rate in [0, 1); got ${opts.dropout}`);
  const inputSize = opts.inputShape ? [opts.inputShape[0], opts.inputShape[1]] as [number, number] : inputSizeOf(model, opts.inputSize);

  const body = truncateModel(model, cutAt, opts.inputShape);
  const feat = body.outputs[0];
  if (feat.shape.length !== 4) {
    body.dispose();
    throw new UserError(`--cut-at: layer '${cutAt}' outputs shape [${feat.shape.join(', ')}]; expected a 4-D feature map [batch, h, w, channels]${layerNamesHint(model)}`);
  }
  let seed = opts.seed;
  const init = () => (seed === undefined ? 'glorotUniform' : tf.initializers.glorotUniform({ seed: seed++ }));
  // Re-heading a model that already has a gapcam head (cut at gap_conv, say) must not repeat a kept layer's name.
  const taken = new Set(body.layers.map((l) => l.name));
  const fresh = (base: string) => {
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    return name;
  };
  let x: tf.SymbolicTensor = feat;
  let featureLayer = cutAt;
  if (convFilters > 0) {
    featureLayer = fresh(GAP_LAYER_NAMES.conv);
    x = tf.layers.conv2d({ filters: convFilters, kernelSize, strides: 1, padding: 'same', activation: 'relu', name: featureLayer, kernelInitializer: init() })
      .apply(x) as tf.SymbolicTensor;
  }
  const poolingLayer = fresh(GAP_LAYER_NAMES.pool);
  x = tf.layers.globalAveragePooling2d({ name: poolingLayer }).apply(x) as tf.SymbolicTensor;
  if (opts.dropout) x = tf.layers.dropout({ rate: opts.dropout, name: fresh(GAP_LAYER_NAMES.dropout), seed: opts.seed }).apply(x) as tf.SymbolicTensor;
  const classifierLayer = fresh(GAP_LAYER_NAMES.classifier);
  x = tf.layers.dense({ units: classes, activation: 'linear', name: classifierLayer, kernelInitializer: init() }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'softmax', name: fresh(GAP_LAYER_NAMES.softmax) }).apply(x) as tf.SymbolicTensor;
  const gapModel = tf.model({ inputs: body.inputs, outputs: x, name: `${model.name}_gap` });
  const meta: ModelMeta = {
    classNames,
    preprocessing: opts.preprocessing ?? spec?.preprocessing ?? identifyKerasApplication(model)?.preprocessing ?? 'unit',
    inputSize,
    headKind: 'gap-dense',
    featureLayer,
    poolingLayer,
    classifierLayer,
    outputIsSoftmax: true,
    ...(opts.recipe ? { recipe: opts.recipe } : {}),
    ...(backbone ? { backbone } : {}),
  };
  return { model: gapModel, meta };
}
