// Whole Keras models from one file: a Keras 3 `.keras` archive (config.json + model.weights.h5), or a legacy
// `model.save('x.h5')` (Keras 2 or Keras 3: the architecture from the root attribute `model_config`, the weights from
// `model_weights`). Keras 2 configs are what tfjs-layers reads
// natively; Keras 3 configs are first rewritten to that form (serialisation wrappers dropped, `batch_shape` →
// `batch_input_shape`, dtype policies → dtype names, call-argument inbound nodes → [layer, node, tensor, {}]).
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { readKerasH5, applyKerasWeights, type KerasH5Weights } from './keras-h5.js';
import { readKerasArchive } from './keras-archive.js';
import { isKerasArchivePath } from './model-files.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Drops Keras 3's {module, class_name, config, registered_name} wrapper fields, recursively. */
function stripWrappers(v: Json): Json {
  if (Array.isArray(v)) return v.map(stripWrappers);
  if (!isObject(v)) return v;
  if (v.class_name === 'DTypePolicy' || v.class_name === 'Policy') {
    const name = isObject(v.config) ? v.config.name : undefined;
    return typeof name === 'string' ? name : 'float32';
  }
  const out: JsonObject = {};
  for (const [k, val] of Object.entries(v)) {
    if (k === 'module' || k === 'registered_name' || k === 'build_config' || k === 'compile_config') continue;
    out[k] = stripWrappers(val);
  }
  return out;
}

/** Keras 3 inbound node ({args, kwargs} with __keras_tensor__ entries) → Keras 2 [[layer, node, tensor, {}], …]. */
function convertInboundNode(node: Json): Json {
  if (Array.isArray(node)) return node; // already Keras 2
  if (!isObject(node)) return node;
  const refs: Json[] = [];
  const visit = (v: Json) => {
    if (Array.isArray(v)) v.forEach(visit);
    else if (isObject(v)) {
      if (v.class_name === '__keras_tensor__' && isObject(v.config) && Array.isArray(v.config.keras_history)) {
        const [layer, nodeIndex, tensorIndex] = v.config.keras_history;
        refs.push([layer, nodeIndex, tensorIndex, {}]);
      } else Object.values(v).forEach(visit);
    }
  };
  visit(node.args ?? []);
  return refs;
}

function convertLayer(layer: JsonObject): JsonObject {
  const config = isObject(layer.config) ? { ...layer.config } : {};
  if ('batch_shape' in config && !('batch_input_shape' in config)) {
    config.batch_input_shape = config.batch_shape;
    delete config.batch_shape;
  }
  if (layer.class_name === 'LeakyReLU' && 'negative_slope' in config && !('alpha' in config)) {
    config.alpha = config.negative_slope;
    delete config.negative_slope;
  }
  const out: JsonObject = { ...layer, config };
  if (Array.isArray(layer.inbound_nodes)) out.inbound_nodes = layer.inbound_nodes.map(convertInboundNode);
  if (out.name === undefined && typeof config.name === 'string') out.name = config.name;
  return out;
}

function wrapEndpoints(v: Json | undefined): Json | undefined {
  if (Array.isArray(v) && v.length > 0 && typeof v[0] === 'string') return [v];
  return v;
}

/** A Keras 2 or Keras 3 model config as tfjs-layers reads it ({class_name, config}). */
export function kerasConfigToTfjs(modelConfig: unknown): { class_name: string; config: JsonObject } {
  const mc = stripWrappers(modelConfig as Json);
  if (!isObject(mc) || typeof mc.class_name !== 'string' || !isObject(mc.config)) {
    throw new UserError('model_config: expected a Keras model config {class_name, config}');
  }
  const cfg: JsonObject = { ...mc.config };
  if (Array.isArray(cfg.layers)) cfg.layers = cfg.layers.map((l) => (isObject(l) ? convertLayer(l) : l));
  if ('input_layers' in cfg) cfg.input_layers = wrapEndpoints(cfg.input_layers) ?? null;
  if ('output_layers' in cfg) cfg.output_layers = wrapEndpoints(cfg.output_layers) ?? null;
  return { class_name: mc.class_name, config: cfg };
}

/** Layer classes of a (converted) model config, with the first layer name of each, in order of appearance. */
function layerClasses(cfg: JsonObject): { className: string; name: string }[] {
  const out: { className: string; name: string }[] = [];
  const layers = Array.isArray(cfg.layers) ? cfg.layers : [];
  for (const l of layers) {
    if (!isObject(l) || typeof l.class_name !== 'string') continue;
    const name = typeof l.name === 'string' ? l.name : isObject(l.config) && typeof l.config.name === 'string' ? l.config.name : '?';
    out.push({ className: l.class_name, name });
    // A nested model (a Sequential or Functional used as a layer) has its own layers.
    if (isObject(l.config) && Array.isArray(l.config.layers)) out.push(...layerClasses(l.config));
  }
  return out;
}

/** The first layer tfjs-layers cannot build, as one line naming its class; undefined when every class is known. */
export function unsupportedLayer(topology: { class_name: string; config: JsonObject }): string | undefined {
  const known = tf.serialization.SerializationMap.getMap().classNameMap;
  const bad = layerClasses(topology.config).find((l) => !(l.className in known));
  if (!bad) return undefined;
  return `layer '${bad.name}' is a ${bad.className}, a layer class tfjs-layers ${tf.version_layers} cannot build; ` +
    'cut the model before it, or replace it in Keras (e.g. do its preprocessing with --preprocessing)';
}

/** Sets the batch input shape of a converted config's only InputLayer (fully convolutional models only). */
function setKerasInputShape(cfg: JsonObject, inputShape: [number, number, number], file: string): void {
  const layers = Array.isArray(cfg.layers) ? cfg.layers.filter(isObject) : [];
  const inputs = layers.filter((l) => l.class_name === 'InputLayer');
  if (inputs.length !== 1) throw new UserError(`${file}: cannot set the input size of a model with ${inputs.length} input layers`);
  const c = { ...(inputs[0].config as JsonObject) };
  c.batch_input_shape = [null, ...inputShape];
  delete c.batch_shape;
  delete c.input_shape;
  inputs[0].config = c;
}

export interface LoadKerasModelOptions {
  /** Rebuild with this [height, width, channels] input (the weights do not depend on it up to a Flatten). */
  inputShape?: [number, number, number];
}

/** Builds the model stored in a Keras file — a `.keras` archive (Keras 3's default) or a legacy full-model .h5
 *  (Keras 2 or 3 `model.save('x.h5')`, or gapcam's keras-h5 export) — and loads its weights. */
export async function loadKerasModel(file: string, opts: LoadKerasModelOptions = {}): Promise<tf.LayersModel> {
  const w = isKerasArchivePath(file) ? await readKerasArchive(file) : await readKerasH5(file);
  return buildKerasModel(file, w, opts);
}

/** The legacy-.h5 entry point (kept for callers that hold the read weights already). */
export async function loadKerasModelH5(file: string, weights?: KerasH5Weights, opts: LoadKerasModelOptions = {}): Promise<tf.LayersModel> {
  return buildKerasModel(file, weights ?? (await readKerasH5(file)), opts);
}

async function buildKerasModel(file: string, w: KerasH5Weights, opts: LoadKerasModelOptions): Promise<tf.LayersModel> {
  if (w.modelConfig === undefined) {
    throw new UserError(`${file}: holds weights only (no model_config attribute); build the architecture and load them with loadKerasWeights`);
  }
  const topology = kerasConfigToTfjs(w.modelConfig);
  const unsupported = unsupportedLayer(topology);
  if (unsupported) throw new UserError(`${file}: ${unsupported}`);
  if (opts.inputShape) setKerasInputShape(topology.config, opts.inputShape, file);
  let model: tf.LayersModel;
  try {
    model = await tf.models.modelFromJSON({ modelTopology: topology as unknown as tf.io.ModelJSON['modelTopology'] } as tf.io.ModelJSON);
  } catch (err) {
    throw new UserError(`${file}: tfjs cannot build this Keras architecture: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    applyKerasWeights(model, w, { match: 'name' });
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}
