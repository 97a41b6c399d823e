// Models in and out in the TensorFlow.js Layers format (model.json + weight shards + gapcam's meta.json).
// Loading goes through tf.io.fromMemory with bytes read here by node fs (or fetch for http(s)), so it works the
// same on every engine (tensorflow, wasm, cpu) and never lets a model.json reach files outside its own folder.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { writeDirAtomic, resolveAtomicDir } from '../util/atomic.js';
import { defaultCheckpointRoot } from '../paths.js';
import type { CamModel, ModelMeta, HeadKind } from './types.js';
import type { PreprocessMode } from '../data/types.js';
import { asCamModel, detectCamHead, type AsCamModelOptions } from './head.js';
import { BACKBONES, buildBackbone, getBackbone, isBackboneName, type BackboneBuildOptions, type BackboneName } from './registry.js';
import { loadKerasModelH5 } from './keras-model.js';

export const MODEL_JSON = 'model.json';
export const META_JSON = 'meta.json';
export const CLASSES_TXT = 'classes.txt';
/** Shard size of saved weights: the tfjs converter's 4 MiB, friendly to browsers and http caches. */
const SHARD_BYTES = 4 * 1024 * 1024;

export function isUrl(ref: string): boolean {
  return /^https?:\/\//i.test(ref);
}

/** A weight path from a model.json resolved inside `dir`; a UserError for absolute paths, URLs and `..` escapes. */
export function resolveWeightPath(dir: string, weightPath: string, modelJsonPath: string): string {
  let p: string;
  try {
    p = decodeURIComponent(weightPath);
  } catch {
    p = weightPath;
  }
  const bad = (why: string) =>
    new UserError(`${modelJsonPath}: weight path '${weightPath}' ${why}; expected a relative path inside ${dir}`);
  if (p.length === 0) throw bad('is empty');
  if (/^[a-z][a-z0-9+.-]*:/i.test(p) || path.isAbsolute(p) || path.win32.isAbsolute(p) || p.startsWith('/') || p.startsWith('\\')) {
    throw bad('is absolute');
  }
  const root = path.resolve(dir);
  const full = path.resolve(root, p);
  const rel = path.relative(root, full);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) throw bad('points outside the model folder');
  // Symlinks must not lead out either.
  if (fs.existsSync(full)) {
    const realRoot = fs.realpathSync(root);
    const realRel = path.relative(realRoot, fs.realpathSync(full));
    if (realRel.startsWith('..') || path.isAbsolute(realRel)) throw bad('is a link to a file outside the model folder');
  }
  return full;
}

function readJsonFile<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`${what}: cannot read ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new UserError(`${what}: ${file} is not valid JSON: ${(err as Error).message.split('\n')[0]}`);
  }
}

function modelJsonPathOf(dirOrFile: string): { dir: string; file: string } {
  const resolved = resolveAtomicDir(dirOrFile) ?? dirOrFile;
  if (!fs.existsSync(resolved)) throw new UserError(`model: ${dirOrFile} does not exist; expected a folder holding ${MODEL_JSON}`);
  if (fs.statSync(resolved).isDirectory()) {
    const file = path.join(resolved, MODEL_JSON);
    if (!fs.existsSync(file)) throw new UserError(`model: ${resolved} holds no ${MODEL_JSON}; expected a tfjs Layers model folder`);
    return { dir: resolved, file };
  }
  return { dir: path.dirname(resolved), file: resolved };
}

function checkModelJson(json: tf.io.ModelJSON, where: string): void {
  if (!json || typeof json !== 'object' || json.modelTopology == null) {
    throw new UserError(`${where}: no 'modelTopology'; expected a TensorFlow.js Layers model.json`);
  }
  const fmt = (json as { format?: string }).format;
  if (fmt && fmt !== 'layers-model') throw new UserError(`${where}: format '${fmt}'; expected 'layers-model' (graph models cannot be used)`);
  if (!Array.isArray(json.weightsManifest)) throw new UserError(`${where}: no 'weightsManifest' list`);
}

/** Loads a tfjs Layers model from a local folder (or a model.json path): reads the shards with node fs and
 *  refuses weight paths that leave the folder. Works on every engine. */
export async function loadLayersModelFromDir(dir: string, opts: LoadLayersOptions = {}): Promise<tf.LayersModel> {
  const { dir: root, file } = modelJsonPathOf(dir);
  const json = readJsonFile<tf.io.ModelJSON>(file, 'model');
  checkModelJson(json, file);
  if (opts.inputShape) setInputShape(json, opts.inputShape, file);
  // Validate every path before reading any.
  const files = json.weightsManifest.map((g) => g.paths.map((p) => resolveWeightPath(root, p, file)));
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const buffers: ArrayBuffer[] = [];
    manifest.forEach((group, gi) => {
      for (const f of files[gi]) {
        let b: Buffer;
        try {
          b = fs.readFileSync(f);
        } catch (err) {
          throw new UserError(`${file}: cannot read weight file ${f}: ${(err as Error).message.split('\n')[0]}`);
        }
        buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
      }
    });
    const specs = manifest.flatMap((g) => g.weights);
    return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
  });
  return loadFromArtifacts(artifacts, file, opts.strict);
}

export interface LoadLayersOptions {
  /** Check that every weight in the file is used (default true). */
  strict?: boolean;
  /** Rebuild the topology with this [height, width, channels] input (fully convolutional models only: a Dense layer
   *  after a Flatten would then get weights of the wrong shape, which loading reports). */
  inputShape?: [number, number, number];
}

/** Rewrites the batch input shape of a model.json topology (functional or Sequential). */
export function setInputShape(json: tf.io.ModelJSON, inputShape: [number, number, number], where: string): void {
  type LayerJson = { class_name: string; config: Record<string, unknown> };
  const topo = json.modelTopology as { model_config?: { class_name: string; config: unknown } ; class_name?: string; config?: unknown };
  const mc = (topo.model_config ?? topo) as { class_name?: string; config?: unknown };
  const layers: LayerJson[] | undefined = Array.isArray(mc.config) ? (mc.config as LayerJson[])
    : (mc.config as { layers?: LayerJson[] } | undefined)?.layers;
  if (!layers || layers.length === 0) throw new UserError(`${where}: cannot set the input shape: no layers in the topology`);
  const inputs = layers.filter((l) => l.class_name === 'InputLayer');
  if (inputs.length > 1) throw new UserError(`${where}: cannot set the input shape of a model with ${inputs.length} inputs`);
  const target = inputs[0] ?? layers[0];
  target.config.batch_input_shape = [null, ...inputShape];
  delete target.config.batch_shape;
  delete target.config.input_shape;
}

async function loadFromArtifacts(artifacts: tf.io.ModelArtifacts, where: string, strict = true): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(tf.io.fromMemory(artifacts), { strict });
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`model ${where}: cannot build the Layers model: ${(err as Error).message.split('\n')[0]}`);
  }
}

async function fetchOk(url: string, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new UserError(`${what}: cannot fetch ${url}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!res.ok) throw new UserError(`${what}: ${url} answered HTTP ${res.status}`);
  return res;
}

/** Loads a tfjs Layers model from an http(s) URL of a model.json (or of the folder holding it). Weight paths must
 *  stay under the model.json's folder on the same server. */
export async function loadLayersModelFromUrl(url: string, opts: LoadLayersOptions = {}): Promise<tf.LayersModel> {
  const modelUrl = url.endsWith('.json') ? url : url.replace(/\/?$/, '/') + MODEL_JSON;
  const base = new URL('.', modelUrl);
  const json = (await (await fetchOk(modelUrl, 'model')).json().catch(() => {
    throw new UserError(`model: ${modelUrl} is not valid JSON`);
  })) as tf.io.ModelJSON;
  checkModelJson(json, modelUrl);
  if (opts.inputShape) setInputShape(json, opts.inputShape, modelUrl);
  const urls = json.weightsManifest.map((g) =>
    g.paths.map((p) => {
      const u = new URL(p, base);
      if (/^[a-z][a-z0-9+.-]*:/i.test(p) || p.startsWith('/') || u.origin !== base.origin || !u.pathname.startsWith(base.pathname)) {
        throw new UserError(`${modelUrl}: weight path '${p}' points outside the model folder; expected a relative path under ${base.href}`);
      }
      return u.href;
    }),
  );
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const buffers: ArrayBuffer[] = [];
    for (const group of urls) for (const u of group) buffers.push(await (await fetchOk(u, 'model weights')).arrayBuffer());
    return [manifest.flatMap((g) => g.weights), tf.io.CompositeArrayBuffer.join(buffers)];
  });
  return loadFromArtifacts(artifacts, modelUrl, opts.strict);
}

/** A local folder / model.json path, or an http(s) URL. */
export async function loadLayersModel(source: string, opts: LoadLayersOptions = {}): Promise<tf.LayersModel> {
  return isUrl(source) ? loadLayersModelFromUrl(source, opts) : loadLayersModelFromDir(source, opts);
}

/** Writes `model` in the tfjs Layers format into `dir` (which must exist): model.json + 4 MiB shards named like the
 *  tfjs converter's (group1-shardXofN.bin). Loadable with tf.loadLayersModel in a browser. */
export async function writeLayersModelFiles(dir: string, model: tf.LayersModel): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0)));
      const n = Math.max(1, Math.ceil(data.byteLength / SHARD_BYTES));
      const paths: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `group1-shard${i + 1}of${n}.bin`;
        fs.writeFileSync(path.join(dir, name), data.subarray(i * SHARD_BYTES, Math.min(data.byteLength, (i + 1) * SHARD_BYTES)));
        paths.push(name);
      }
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: 'gapcam',
        weightsManifest: [{ paths, weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig) json.trainingConfig = artifacts.trainingConfig;
      fs.writeFileSync(path.join(dir, MODEL_JSON), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: data.byteLength } };
    }),
  );
}

/** Saves a plain Layers model (no meta) atomically into `dir`. */
export async function saveLayersModelToDir(dir: string, model: tf.LayersModel): Promise<void> {
  await writeDirAtomic(dir, (tmp) => writeLayersModelFiles(tmp, model));
}

/** Saves a CAM model atomically: model.json + shards + meta.json (+ classes.txt for people and other tools). */
export async function saveCamModel(dir: string, cam: CamModel): Promise<void> {
  validateMeta(cam.meta, 'saveCamModel meta');
  await writeDirAtomic(dir, async (tmp) => {
    await writeLayersModelFiles(tmp, cam.model);
    fs.writeFileSync(path.join(tmp, META_JSON), JSON.stringify(cam.meta, null, 2) + '\n');
    fs.writeFileSync(path.join(tmp, CLASSES_TXT), cam.meta.classNames.join('\n') + '\n');
  });
}

const PREPROCESS_MODES: readonly PreprocessMode[] = ['caffe', 'torch', 'unit'];
const HEAD_KINDS: readonly HeadKind[] = ['gap-dense', 'conv-gap'];

/** Checks a meta object's fields; a UserError naming the first bad one. */
export function validateMeta(meta: unknown, where: string): asserts meta is ModelMeta {
  const m = meta as Record<string, unknown>;
  const fail = (field: string, expected: string) =>
    new UserError(`${where}: field '${field}' should be ${expected}; got ${JSON.stringify(m?.[field])?.slice(0, 80)}`);
  if (!m || typeof m !== 'object') throw new UserError(`${where}: expected a JSON object`);
  if (!Array.isArray(m.classNames) || !m.classNames.every((c) => typeof c === 'string') || m.classNames.length === 0) {
    throw fail('classNames', 'a non-empty list of strings');
  }
  if (!PREPROCESS_MODES.includes(m.preprocessing as PreprocessMode)) throw fail('preprocessing', PREPROCESS_MODES.join('|'));
  if (!Array.isArray(m.inputSize) || m.inputSize.length !== 2 || !m.inputSize.every((v) => Number.isInteger(v) && v > 0)) {
    throw fail('inputSize', '[height, width] in pixels');
  }
  if (!HEAD_KINDS.includes(m.headKind as HeadKind)) throw fail('headKind', HEAD_KINDS.join('|'));
  for (const f of ['featureLayer', 'poolingLayer']) if (typeof m[f] !== 'string') throw fail(f, 'a layer name');
  if (m.headKind === 'gap-dense' && typeof m.classifierLayer !== 'string') throw fail('classifierLayer', 'a layer name (gap-dense head)');
  if (typeof m.outputIsSoftmax !== 'boolean') throw fail('outputIsSoftmax', 'true or false');
}

/** Reads and checks `dir/meta.json`; undefined when absent. */
export function readMeta(dir: string): ModelMeta | undefined {
  const file = path.join(dir, META_JSON);
  if (!fs.existsSync(file)) return undefined;
  const meta = readJsonFile<unknown>(file, 'model meta');
  validateMeta(meta, file);
  return meta;
}

/** Class names from `dir/classes.txt` (one a line; blank trailing lines ignored); undefined when absent. */
export function readClassesTxt(dir: string): string[] | undefined {
  const file = path.join(dir, CLASSES_TXT);
  if (!fs.existsSync(file)) return undefined;
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/).map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Checks that the layers a meta names exist in the model and that the class count matches its output. */
export function checkMetaAgainstModel(meta: ModelMeta, model: tf.LayersModel, where: string): void {
  for (const f of ['featureLayer', 'poolingLayer', 'classifierLayer'] as const) {
    const name = meta[f];
    if (name === undefined) continue;
    try {
      model.getLayer(name);
    } catch {
      throw new UserError(`${where}: ${f} '${name}' is not a layer of model '${model.name}'`);
    }
  }
  const out = model.outputs[0].shape;
  const n = out[out.length - 1];
  if (n !== meta.classNames.length) {
    throw new UserError(`${where}: ${meta.classNames.length} class names but the model outputs ${n} classes`);
  }
}

export interface LoadCamModelOptions extends Omit<AsCamModelOptions, 'classNames'> {
  /** Overrides meta.json / classes.txt. */
  classNames?: string[];
}

/** Loads a CAM model from a folder (or http(s) URL). With meta.json (written by saveCamModel) the meta is read and
 *  checked against the model; without it the head must be CAM-ready as it stands (GAP → Dense or conv → GAP) and
 *  class names come from classes.txt when present. Preprocessing defaults to 'unit' ([0,1] RGB, as darknet-tiny). */
export async function loadCamModel(dir: string, opts: LoadCamModelOptions = {}): Promise<CamModel> {
  if (isUrl(dir)) {
    const model = await loadLayersModelFromUrl(dir);
    const base = dir.endsWith('.json') ? new URL('.', dir).href : dir.replace(/\/?$/, '/');
    let meta: ModelMeta | undefined;
    const res = await fetch(base + META_JSON).catch(() => undefined);
    if (res?.ok) {
      const m = (await res.json().catch(() => undefined)) as unknown;
      validateMeta(m, base + META_JSON);
      meta = m;
    }
    return finishCam(model, meta, undefined, opts, base);
  }
  const { dir: root } = modelJsonPathOf(dir);
  const model = await loadLayersModelFromDir(root);
  return finishCam(model, readMeta(root), readClassesTxt(root), opts, root);
}

function finishCam(model: tf.LayersModel, meta: ModelMeta | undefined, classes: string[] | undefined,
  opts: LoadCamModelOptions, where: string): CamModel {
  if (meta) {
    const merged: ModelMeta = { ...meta, ...(opts.classNames ? { classNames: opts.classNames } : {}),
      ...(opts.preprocessing ? { preprocessing: opts.preprocessing } : {}) };
    checkMetaAgainstModel(merged, model, where);
    return { model, meta: merged };
  }
  let classNames = opts.classNames ?? classes;
  const head = detectCamHead(model);
  if (typeof head !== 'string' && classNames && classNames.length !== head.numClasses) {
    throw new UserError(`${where}/${CLASSES_TXT}: ${classNames.length} class names but the model outputs ${head.numClasses} classes`);
  }
  if (typeof head === 'string') classNames = undefined;
  return asCamModel(model, { ...opts, classNames });
}

export type ModelRefKind = 'folder' | 'checkpoint' | 'url' | 'backbone' | 'keras-h5';

export interface LoadedModelRef {
  model: tf.LayersModel;
  /** meta.json when the folder has one, else the detected CAM head (undefined when the model is not CAM-ready). */
  meta?: ModelMeta;
  kind: ModelRefKind;
  /** The folder (or URL) the model was read from, or the backbone name. */
  source: string;
  /** Set when `ref` named a registered backbone. */
  backbone?: BackboneName;
}

/** `checkpoints/<run>` → `<run>/best` (else `<run>/last`); a model folder as is. */
export function resolveModelFolder(ref: string, checkpointRoot = defaultCheckpointRoot): { dir: string; kind: ModelRefKind } | undefined {
  const candidates = [ref];
  if (!path.isAbsolute(ref) && !ref.startsWith('.')) candidates.push(path.join(checkpointRoot, ref));
  for (const c of candidates) {
    const d = resolveAtomicDir(c);
    if (!d) continue;
    if (fs.statSync(d).isFile() && d.endsWith('.json')) return { dir: d, kind: 'folder' };
    if (!fs.statSync(d).isDirectory()) continue;
    if (fs.existsSync(path.join(d, MODEL_JSON))) return { dir: d, kind: c === ref && !d.includes(checkpointRoot) ? 'folder' : 'checkpoint' };
    for (const sub of ['best', 'last']) {
      const s = resolveAtomicDir(path.join(d, sub));
      if (s && fs.existsSync(path.join(s, MODEL_JSON))) return { dir: s, kind: 'checkpoint' };
    }
  }
  return undefined;
}

/** Loads a model named by the user: a tfjs model folder or model.json, a checkpoint run folder (its best/, else
 *  last/), a run name under the checkpoint root, an http(s) URL, or a whole-model Keras .h5; undefined when `ref`
 *  names none of these. */
export async function loadModelFolderRef(ref: string, opts: { checkpointRoot?: string } = {}): Promise<LoadedModelRef | undefined> {
  if (isUrl(ref)) {
    const cam = await loadCamModel(ref).catch(async (err) => {
      if (err instanceof UserError && /not CAM-ready/.test(err.message)) return { model: await loadLayersModelFromUrl(ref), meta: undefined };
      throw err;
    });
    return { model: cam.model, meta: cam.meta, kind: 'url', source: ref };
  }
  if (/\.(h5|hdf5)$/i.test(ref) && fs.existsSync(ref) && fs.statSync(ref).isFile()) return loadKerasModelRef(ref);
  const found = resolveModelFolder(ref, opts.checkpointRoot);
  if (!found) return undefined;
  const root = modelJsonPathOf(found.dir).dir;
  const model = await loadLayersModelFromDir(found.dir);
  const meta = readMeta(root);
  if (meta) {
    checkMetaAgainstModel(meta, model, root);
    return { model, meta, kind: found.kind, source: root };
  }
  const classes = readClassesTxt(root);
  const head = detectCamHead(model);
  let detected: ModelMeta | undefined;
  if (typeof head !== 'string') {
    detected = asCamModel(model, { classNames: classes?.length === head.numClasses ? classes : undefined }).meta;
  }
  return { model, meta: detected, kind: found.kind, source: root };
}

/** A whole Keras model from a legacy .h5 (architecture + weights); the meta from `<name>.meta.json` beside it
 *  (written by `gapcam model export --format keras-h5`), else the detected CAM head. */
async function loadKerasModelRef(file: string): Promise<LoadedModelRef> {
  const model = await loadKerasModelH5(file);
  const metaFile = file.replace(/\.(h5|hdf5)$/i, '.meta.json');
  let meta: ModelMeta | undefined;
  if (fs.existsSync(metaFile)) {
    const m = readJsonFile<unknown>(metaFile, 'model meta');
    validateMeta(m, metaFile);
    checkMetaAgainstModel(m, model, metaFile);
    meta = m;
  } else {
    const head = detectCamHead(model);
    if (typeof head !== 'string') meta = asCamModel(model).meta;
  }
  return { model, meta, kind: 'keras-h5', source: file };
}

export interface LoadModelRefOptions {
  checkpointRoot?: string;
  /** Build options when `ref` names a registered backbone (weights, includeTop, inputShape, …). */
  backbone?: BackboneBuildOptions;
}

/** Loads a model named by the user: a model folder / model.json, a checkpoint run folder (best/, else last/), a run
 *  name under the checkpoint root, an http(s) URL, or a registered backbone name (built with `opts.backbone`; an
 *  existing folder of the same name wins). A UserError naming what was tried when none fits. */
export async function loadModelRef(ref: string, opts: LoadModelRefOptions = {}): Promise<LoadedModelRef> {
  const found = await loadModelFolderRef(ref, opts);
  if (found) return found;
  if (isBackboneName(ref)) {
    const bopts = opts.backbone ?? {};
    const model = await buildBackbone(ref, bopts);
    const head = detectCamHead(model);
    let meta: ModelMeta | undefined;
    if (typeof head !== 'string') {
      const w = bopts.weights;
      const classes = w && !isUrl(w) && fs.existsSync(w) && fs.statSync(w).isDirectory() ? readClassesTxt(w) : undefined;
      meta = asCamModel(model, {
        classNames: classes?.length === head.numClasses ? classes : undefined,
        preprocessing: getBackbone(ref).preprocessing,
        backbone: ref,
      }).meta;
    }
    return { model, meta, kind: 'backbone', source: ref, backbone: ref };
  }
  throw new UserError(`model '${ref}': not a model folder (with ${MODEL_JSON}), a checkpoint run (with best/ or last/), ` +
    `a run under ${opts.checkpointRoot ?? defaultCheckpointRoot}, an http(s) URL, a Keras .h5 model, or a backbone name (${Object.keys(BACKBONES).join(', ')})`);
}
