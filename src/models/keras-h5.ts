// Keras HDF5 weights in and out, read and written with h5wasm (the HDF5 C library compiled to WebAssembly).
//
// Layouts read:
// - Keras 2 `save_weights` (.h5) and the official keras-applications files: root attribute `layer_names`, one group
//   per layer with attribute `weight_names`, datasets at `<layer>/<weight name>` (e.g. `block1_conv1/kernel:0`,
//   or Keras 1's `block1_conv1_W_1:0`); long attributes chunked as `layer_names0`, `layer_names1`, ….
// - Keras 2/3 legacy `model.save('x.h5')`: the same inside the group `model_weights`, topology in attribute
//   `model_config`.
// - Keras 3 `.weights.h5`: `layers/<key>/vars/<i>`, where <key> is the layer's class in snake_case with a counter
//   (`conv2d`, `conv2d_1`, …) and `vars` carries the layer's own name as attribute `name` (checked against Keras
//   3.15 files); matching is by that name, else by the class-counter key.
// Layout written: Keras 2 `save_weights`, which Keras 2 and Keras 3 `model.load_weights('x.h5')` read.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import h5wasm from 'h5wasm/node';
import { UserError } from '../errors.js';

type H5Group = InstanceType<typeof h5wasm.Group>;
type H5Dataset = InstanceType<typeof h5wasm.Dataset>;
type H5File = InstanceType<typeof h5wasm.File>;

/** Keras version written into exported files (Keras checks it is present; '2.x' layout). */
export const EXPORT_KERAS_VERSION = '2.15.0';

export interface H5Weight {
  /** The weight's name in the file (e.g. `block1_conv1/kernel:0`, or `vars/0` for Keras 3). */
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface KerasH5Weights {
  file: string;
  layout: 'keras2' | 'keras2-model' | 'keras3';
  /** Layer groups in the file's order (Keras 2: the `layer_names` attribute, including layers without weights). */
  layerNames: string[];
  /** Weights per layer group, in the order Keras stores them (kernel, bias; gamma, beta, mean, variance). */
  layers: Map<string, H5Weight[]>;
  /** Keras 3: group key (class name + counter, e.g. `conv2d_1`) → the layer name the weights are stored under. */
  groupKeys?: Map<string, string>;
  /** Legacy `model.save` files: the Keras model config (JSON). */
  modelConfig?: unknown;
  kerasVersion?: string;
  backend?: string;
}

let ready: Promise<unknown> | undefined;
async function h5(): Promise<typeof h5wasm> {
  ready ??= h5wasm.ready;
  await ready;
  return h5wasm;
}

function isGroup(e: unknown): e is H5Group {
  return e instanceof h5wasm.Group;
}
function isDataset(e: unknown): e is H5Dataset {
  return e instanceof h5wasm.Dataset;
}

function decodeString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new TextDecoder().decode(v).replace(/\0+$/, '');
  return String(v);
}

/** A string-list attribute as Keras writes it, including the chunked form `<name>0`, `<name>1`, …. */
function readStringListAttr(obj: H5Group, name: string): string[] | undefined {
  const attrs = obj.attrs;
  const one = (a: string): string[] => {
    const v = attrs[a].value;
    if (Array.isArray(v)) return v.map(decodeString);
    if (v === null || v === undefined) return [];
    // Keras writes an empty list as an empty float array (np.asarray([])).
    if (ArrayBuffer.isView(v) && !(v instanceof Uint8Array)) return [];
    if (v instanceof Uint8Array && v.length === 0) return [];
    return [decodeString(v)];
  };
  if (name in attrs) return one(name);
  if (`${name}0` in attrs) {
    const out: string[] = [];
    for (let i = 0; `${name}${i}` in attrs; i++) out.push(...one(`${name}${i}`));
    return out;
  }
  return undefined;
}

function readStringAttr(obj: H5Group, name: string): string | undefined {
  if (!(name in obj.attrs)) return undefined;
  const v = obj.attrs[name].value;
  return v === null ? undefined : decodeString(Array.isArray(v) ? v[0] : v);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function datasetToFloat32(ds: H5Dataset, where: string): Float32Array {
  const meta = ds.metadata;
  const v = ds.value;
  if (v instanceof Float32Array) return v;
  if (v instanceof Float64Array || v instanceof Int32Array || v instanceof Int16Array || v instanceof Int8Array ||
    v instanceof Uint32Array || v instanceof Uint16Array) return Float32Array.from(v);
  if (meta.type === 1 /* H5T_FLOAT */ && meta.size === 2 && v instanceof Uint8Array) {
    const u16 = new Uint16Array(v.buffer, v.byteOffset, v.byteLength / 2);
    return Float32Array.from(u16, halfToFloat);
  }
  if (v instanceof Uint8Array && meta.type === 0) return Float32Array.from(v);
  if (typeof v === 'number') return Float32Array.of(v);
  throw new UserError(`${where}: unsupported dataset type (dtype ${JSON.stringify(ds.dtype)}); expected floating point weights`);
}

function readWeight(group: H5Group, name: string, where: string): H5Weight {
  const ds = group.get(name);
  if (!isDataset(ds)) throw new UserError(`${where}: weight '${name}' is listed in weight_names but no such dataset exists`);
  return { name, shape: ds.shape ?? [], values: datasetToFloat32(ds, `${where}: ${name}`) };
}

function readKeras2Group(root: H5Group, file: string): { layerNames: string[]; layers: Map<string, H5Weight[]> } {
  const layerNames = readStringListAttr(root, 'layer_names')!;
  const layers = new Map<string, H5Weight[]>();
  for (const ln of layerNames) {
    const g = root.get(ln);
    if (!isGroup(g)) throw new UserError(`${file}: layer '${ln}' is listed in layer_names but has no group`);
    const wn = readStringListAttr(g, 'weight_names') ?? [];
    layers.set(ln, wn.map((n) => readWeight(g, n, `${file}: layer '${ln}'`)));
  }
  return { layerNames, layers };
}

function readKeras3(root: H5Group, file: string): { layerNames: string[]; layers: Map<string, H5Weight[]>; groupKeys: Map<string, string> } {
  const layersGroup = root.get('layers') ?? root.get('_layer_checkpoint_dependencies');
  if (!isGroup(layersGroup)) throw new UserError(`${file}: no 'layers' group; expected a Keras 3 .weights.h5 file`);
  const layerNames: string[] = [];
  const layers = new Map<string, H5Weight[]>();
  const groupKeys = new Map<string, string>();
  for (const key of layersGroup.keys()) {
    const g = layersGroup.get(key);
    if (!isGroup(g)) continue;
    const vars = g.get('vars');
    const weights: H5Weight[] = [];
    // Keras 3 names the group by class (conv2d_1) and records the layer's own name as the `name` attribute of vars.
    const ln = (isGroup(vars) && readStringAttr(vars, 'name')) || key;
    if (isGroup(vars)) {
      const keys = vars.keys().filter((k) => /^\d+$/.test(k)).sort((a, b) => Number(a) - Number(b));
      for (const k of keys) weights.push(readWeight(vars, k, `${file}: layers/${key}`));
    }
    layerNames.push(ln);
    layers.set(ln, weights);
    groupKeys.set(key, ln);
  }
  return { layerNames, layers, groupKeys };
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The HDF5 superblock signature sits at offset 0, 512, 1024, 2048, … (after an optional user block). */
export function hasHdf5Signature(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(8);
    for (let off = 0; off + 8 <= size; off = off === 0 ? 512 : off * 2) {
      fs.readSync(fd, buf, 0, 8, off);
      if (buf.equals(HDF5_SIGNATURE)) return true;
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads every weight of a Keras .h5 file (any of the layouts above) into memory as float32. */
export async function readKerasH5(file: string): Promise<KerasH5Weights> {
  const lib = await h5();
  if (!fs.existsSync(file)) throw new UserError(`weights file ${file} does not exist`);
  if (!hasHdf5Signature(file)) throw new UserError(`weights file ${file}: not a readable HDF5 file (no HDF5 signature); expected a Keras .h5 file`);
  let f: H5File;
  try {
    f = new lib.File(path.resolve(file), 'r');
  } catch (err) {
    throw new UserError(`weights file ${file}: not a readable HDF5 file (${(err as Error).message?.split('\n')[0] ?? err})`);
  }
  try {
    if (f.file_id < 0n) throw new UserError(`weights file ${file}: not a readable HDF5 file`);
    let root: H5Group = f;
    let layout: KerasH5Weights['layout'] = 'keras2';
    let modelConfig: unknown;
    const mcText = readStringAttr(f, 'model_config');
    if (mcText !== undefined) {
      try {
        modelConfig = JSON.parse(mcText);
      } catch {
        throw new UserError(`${file}: attribute model_config is not valid JSON`);
      }
    }
    if (readStringListAttr(f, 'layer_names') === undefined) {
      const mw = f.get('model_weights');
      if (isGroup(mw) && readStringListAttr(mw, 'layer_names') !== undefined) {
        root = mw;
        layout = 'keras2-model';
      } else if (f.keys().includes('layers') || f.keys().includes('_layer_checkpoint_dependencies')) {
        layout = 'keras3';
      } else {
        throw new UserError(`${file}: neither a Keras 2 weights file (no 'layer_names' attribute) nor a Keras 3 .weights.h5 (no 'layers' group)`);
      }
    }
    const { layerNames, layers, groupKeys } = layout === 'keras3' ? readKeras3(root, file) : { ...readKeras2Group(root, file), groupKeys: undefined };
    return {
      file, layout, layerNames, layers, modelConfig, ...(groupKeys ? { groupKeys } : {}),
      kerasVersion: readStringAttr(root, 'keras_version') ?? readStringAttr(f, 'keras_version'),
      backend: readStringAttr(root, 'backend') ?? readStringAttr(f, 'backend'),
    };
  } finally {
    f.close();
  }
}

/** Keras' `to_snake_case` of a class name (Conv2D → conv2d, BatchNormalization → batch_normalization). */
export function kerasSnakeCase(className: string): string {
  let s = className.replace(/\W+/g, '');
  s = s.replace(/(.)([A-Z][a-z]+)/g, '$1_$2');
  return s.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

export type WeightMatch = 'auto' | 'name' | 'order';

export interface LoadKerasWeightsOptions {
  /** 'name': file layer groups by the model's layer names (Keras `by_name=True`); 'order': the weighted layers in
   *  order (Keras' default); 'auto' (default): by name when every weighted layer is found, else by order. */
  match?: WeightMatch;
  /** Model layers that may be absent from the file and keep their current weights (e.g. a new GAP head). */
  allowMissing?: string[] | boolean;
}

export interface LoadKerasWeightsReport {
  /** Model layers whose weights were set. */
  loaded: string[];
  /** Model layers with weights that the file did not have (allowed by allowMissing). */
  missing: string[];
  match: 'name' | 'order';
  layout: KerasH5Weights['layout'];
}

function shapeStr(s: readonly (number | null)[]): string {
  return `[${s.join(', ')}]`;
}

function assign(layer: tf.layers.Layer, values: H5Weight[], file: string, fileLayer: string): void {
  const weights = layer.weights;
  if (values.length !== weights.length) {
    throw new UserError(`${file}: layer '${layer.name}' has ${weights.length} weights but the file's '${fileLayer}' has ${values.length}`);
  }
  weights.forEach((w, i) => {
    const expected = w.shape;
    const got = values[i].shape;
    if (expected.length !== got.length || expected.some((d, j) => d !== got[j])) {
      const wname = w.originalName.split('/').pop();
      throw new UserError(`${file}: layer '${layer.name}' weight '${wname}': expected shape ${shapeStr(expected)}, file has ${shapeStr(got)} ('${fileLayer}/${values[i].name}')`);
    }
  });
  const tensors = values.map((v) => tf.tensor(v.values, v.shape, 'float32'));
  try {
    layer.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
}

/** Sets `model`'s weights from already-read Keras weights; name and shape checks give a one-line UserError. */
export function applyKerasWeights(model: tf.LayersModel, weights: KerasH5Weights, opts: LoadKerasWeightsOptions = {}): LoadKerasWeightsReport {
  const file = weights.file;
  const weighted = model.layers.filter((l) => l.weights.length > 0);
  const allow = (name: string) => opts.allowMissing === true || (Array.isArray(opts.allowMissing) && opts.allowMissing.includes(name));
  // Keras 3 groups may be named by class with a counter: compute that name for every model layer.
  const keras3Name = keras3LayerKeys(model);
  const fileNameFor = (l: tf.layers.Layer): string | undefined => {
    if (weights.layers.has(l.name) && (weights.layers.get(l.name)!.length > 0)) return l.name;
    if (weights.layout === 'keras3') {
      const alt = weights.groupKeys?.get(keras3Name.get(l.name)!);
      if (alt !== undefined && (weights.layers.get(alt)?.length ?? 0) > 0) return alt;
    }
    return undefined;
  };
  const unmatched = weighted.filter((l) => fileNameFor(l) === undefined && !allow(l.name));
  let match: 'name' | 'order';
  // Keras 3 groups are keyed by class name, not in graph order: they are matched by name only.
  if (opts.match === 'name' || weights.layout === 'keras3' || (opts.match !== 'order' && unmatched.length === 0)) match = 'name';
  else match = 'order';
  const loaded: string[] = [];
  const missing: string[] = [];
  if (match === 'name') {
    if (unmatched.length > 0) {
      const l = unmatched[0];
      throw new UserError(`${file}: no weights for layer '${l.name}' (${l.getClassName()}); the file has ${[...weights.layers.keys()].filter((k) => weights.layers.get(k)!.length).slice(0, 8).join(', ')}${weights.layers.size > 8 ? ', …' : ''}`);
    }
    for (const l of weighted) {
      const fname = fileNameFor(l);
      if (fname === undefined) {
        missing.push(l.name);
        continue;
      }
      assign(l, weights.layers.get(fname)!, file, fname);
      loaded.push(l.name);
    }
  } else {
    const order = weights.layout === 'keras3' ? [...weights.layers.keys()] : weights.layerNames;
    const fileLayers = order.filter((n) => (weights.layers.get(n)?.length ?? 0) > 0);
    if (fileLayers.length !== weighted.length) {
      throw new UserError(`${file}: the model has ${weighted.length} layers with weights, the file ${fileLayers.length}, and ${unmatched.length} layers (e.g. '${unmatched[0]?.name}') are not found by name; expected the same architecture`);
    }
    weighted.forEach((l, i) => {
      assign(l, weights.layers.get(fileLayers[i])!, file, fileLayers[i]);
      loaded.push(l.name);
    });
  }
  return { loaded, missing, match, layout: weights.layout };
}

/** Reads a Keras .h5 weights file and sets `model`'s weights from it (see applyKerasWeights). */
export async function loadKerasWeights(model: tf.LayersModel, file: string, opts: LoadKerasWeightsOptions = {}): Promise<LoadKerasWeightsReport> {
  return applyKerasWeights(model, await readKerasH5(file), opts);
}

function writeStringListAttr(obj: H5Group, name: string, values: string[]): void {
  // Keras writes numpy fixed-length byte strings; an empty list is an empty float array in Keras (np.asarray([])).
  if (values.length === 0) {
    obj.create_attribute(name, new Float32Array(0), [0], '<f');
    return;
  }
  const bytes = Math.max(1, ...values.map((v) => Buffer.byteLength(v, 'utf8')));
  obj.create_attribute(name, values, [values.length], `S${bytes}`);
}

/** Writes `model`'s weights as a Keras 2 `save_weights` .h5 (root `layer_names`, `backend`, `keras_version`; per
 *  layer group `weight_names` and datasets `<layer>/<layer>/<weight>:0`), atomically. Keras reads it with
 *  `model.load_weights(file)` into the same architecture. */
export interface SaveKerasH5Options {
  /** Also store the architecture (root attribute `model_config` + weights under `model_weights`), the layout of
   *  Keras' legacy `model.save('x.h5')`, so that `keras.models.load_model` rebuilds the model from the file alone;
   *  `load_weights` still reads it. Default false (plain `save_weights` layout). */
  includeModelConfig?: boolean;
}

function writeVersionAttrs(g: H5Group): void {
  g.create_attribute('backend', 'tensorflow', null, `S${'tensorflow'.length}`);
  g.create_attribute('keras_version', EXPORT_KERAS_VERSION, null, `S${EXPORT_KERAS_VERSION.length}`);
}

/** The model's Keras (2-style) architecture JSON, as tfjs serialises it. */
export function kerasModelConfig(model: tf.LayersModel): string {
  const json = model.toJSON(null, false) as { class_name: string; config: unknown };
  return JSON.stringify({ class_name: json.class_name === 'Model' ? 'Functional' : json.class_name, config: json.config });
}

export async function saveKerasH5(model: tf.LayersModel, file: string, opts: SaveKerasH5Options = {}): Promise<void> {
  const lib = await h5();
  await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}`);
  const f = new lib.File(tmp, 'w');
  try {
    let root: H5Group = f;
    if (opts.includeModelConfig) {
      const cfg = kerasModelConfig(model);
      f.create_attribute('model_config', cfg, null, `S${Buffer.byteLength(cfg, 'utf8')}`);
      writeVersionAttrs(f);
      root = f.create_group('model_weights');
    }
    writeStringListAttr(root, 'layer_names', model.layers.map((l) => l.name));
    writeVersionAttrs(root);
    for (const layer of model.layers) {
      const g = root.create_group(layer.name);
      const names = layer.weights.map((w) => `${w.originalName}:0`);
      writeStringListAttr(g, 'weight_names', names);
      const values = layer.getWeights(); // the variables' own tensors: not to be disposed
      {
        names.forEach((n, i) => {
          const parts = n.split('/');
          let parent: H5Group = g;
          for (const p of parts.slice(0, -1)) {
            const existing = parent.get(p);
            parent = isGroup(existing) ? existing : parent.create_group(p);
          }
          const t = values[i];
          parent.create_dataset({ name: parts[parts.length - 1], data: t.dataSync() as Float32Array, shape: t.shape, dtype: '<f' });
        });
      }
    }
  } catch (err) {
    f.close();
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
  f.close();
  await fs.promises.rename(tmp, file);
}

/** Keras 3's group key of every layer of `model`: its class in snake_case with a per-class counter over the layers
 *  in order (conv2d, conv2d_1, …), as Keras 3's saving_lib names them in `.weights.h5`. */
export function keras3LayerKeys(model: tf.LayersModel): Map<string, string> {
  const counter = new Map<string, number>();
  const keys = new Map<string, string>();
  for (const l of model.layers) {
    const base = kerasSnakeCase(l.getClassName());
    const k = counter.get(base) ?? 0;
    counter.set(base, k + 1);
    keys.set(l.name, k === 0 ? base : `${base}_${k}`);
  }
  return keys;
}

/** Writes `model`'s weights in Keras 3's `.weights.h5` layout (`layers/<class key>/vars/<i>`, the layer's name as
 *  the `name` attribute of `vars`), the file inside a `.keras` archive. Not atomic: the caller writes a temp file. */
export async function writeKeras3WeightsH5(model: tf.LayersModel, file: string): Promise<void> {
  const lib = await h5();
  const f = new lib.File(file, 'w');
  try {
    const layersGroup = f.create_group('layers');
    f.create_group('vars');
    const keys = keras3LayerKeys(model);
    for (const layer of model.layers) {
      const g = layersGroup.create_group(keys.get(layer.name)!);
      const vars = g.create_group('vars');
      vars.create_attribute('name', layer.name, null, `S${Math.max(1, Buffer.byteLength(layer.name, 'utf8'))}`);
      layer.getWeights().forEach((t, i) => {
        vars.create_dataset({ name: String(i), data: t.dataSync() as Float32Array, shape: t.shape, dtype: '<f' });
      });
    }
  } finally {
    f.close();
  }
}
