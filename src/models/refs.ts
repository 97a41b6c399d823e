// Model references as every command takes them: a folder, a checkpoint run (or run name), a URL, a registered
// backbone name, or a Keras .h5 file.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { defaultCheckpointRoot } from '../paths.js';
import type { ModelMeta } from './types.js';
import { asCamModel, detectCamHead } from './head.js';
import { BACKBONES, buildBackbone, getBackbone, isBackboneName, type BackboneBuildOptions, type BackboneName } from './registry.js';
import { loadKerasModel } from './keras-model.js';
import { assumedPreprocessing } from './keras-apps.js';
import { isKerasArchivePath, isKerasH5Path } from './model-files.js';
import type { PreprocessMode } from '../data/types.js';
import { MODEL_JSON, isUrl, loadLayersModel, loadLayersModelFromDir, loadLayersModelFromUrl, modelJsonPathOf, readJsonFile } from './layers-io.js';
import { checkMetaAgainstModel, loadCamModel, readMeta, readClassesTxt, validateMeta, META_JSON } from './meta.js';
import { resolveAtomicDir } from '../util/atomic.js';

export type ModelRefKind = 'folder' | 'checkpoint' | 'url' | 'backbone' | 'keras-h5' | 'keras';

export interface LoadedModelRef {
  model: tf.LayersModel;
  /** meta.json when the folder has one, else the detected CAM head (undefined when the model is not CAM-ready). */
  meta?: ModelMeta;
  kind: ModelRefKind;
  /** What the model's input is normalised with: meta.json's, a registered backbone's, a known Keras application's,
   *  the caller's, else 'unit' (with a one-time warning). */
  preprocessing: PreprocessMode;
  /** The folder (or URL) the model was read from, or the backbone name. */
  source: string;
  /** Set when `ref` named a registered backbone. */
  backbone?: BackboneName;
}

/** `checkpoints/<run>` → `<run>/best` (else `<run>/last`); a model folder as is. */
export function resolveModelFolder(ref: string, checkpointRoot = defaultCheckpointRoot()): { dir: string; kind: ModelRefKind } | undefined {
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
export async function loadModelFolderRef(ref: string, opts: { checkpointRoot?: string; preprocessing?: PreprocessMode } = {}): Promise<LoadedModelRef | undefined> {
  if (isUrl(ref)) {
    const cam = await loadCamModel(ref, { preprocessing: opts.preprocessing }).catch(async (err) => {
      if (err instanceof UserError && /not CAM-ready/.test(err.message)) return { model: await loadLayersModelFromUrl(ref), meta: undefined };
      throw err;
    });
    const preprocessing = cam.meta?.preprocessing ?? opts.preprocessing ?? assumedPreprocessing(cam.model, ref);
    return { model: cam.model, meta: cam.meta, kind: 'url', source: ref, preprocessing };
  }
  if ((isKerasH5Path(ref) || isKerasArchivePath(ref)) && fs.existsSync(ref) && fs.statSync(ref).isFile()) return loadKerasModelRef(ref, opts.preprocessing);
  const found = resolveModelFolder(ref, opts.checkpointRoot);
  if (!found) return undefined;
  const root = modelJsonPathOf(found.dir).dir;
  const model = await loadLayersModelFromDir(found.dir);
  const meta = readMeta(root);
  if (meta) {
    checkMetaAgainstModel(meta, model, root);
    return { model, meta, kind: found.kind, source: root, preprocessing: meta.preprocessing };
  }
  const classes = readClassesTxt(root);
  const head = detectCamHead(model);
  const preprocessing = opts.preprocessing ?? assumedPreprocessing(model, root);
  let detected: ModelMeta | undefined;
  if (typeof head !== 'string') {
    detected = asCamModel(model, { classNames: classes?.length === head.numClasses ? classes : undefined, preprocessing }).meta;
  }
  return { model, meta: detected, kind: found.kind, source: root, preprocessing };
}

/** A whole Keras model from a `.keras` archive or a legacy .h5 (architecture + weights); the meta from
 *  `<name>.meta.json` beside it (written by `gapcam model export`), else the detected CAM head. */
async function loadKerasModelRef(file: string, preprocessing?: PreprocessMode): Promise<LoadedModelRef> {
  const model = await loadKerasModel(file);
  const kind: ModelRefKind = isKerasArchivePath(file) ? 'keras' : 'keras-h5';
  const metaFile = file.replace(/\.(h5|hdf5|keras)$/i, '.meta.json');
  let meta: ModelMeta | undefined;
  if (fs.existsSync(metaFile)) {
    const m = readJsonFile<unknown>(metaFile, 'model meta');
    validateMeta(m, metaFile);
    checkMetaAgainstModel(m, model, metaFile);
    return { model, meta: m, kind, source: file, preprocessing: m.preprocessing };
  }
  const pre = preprocessing ?? assumedPreprocessing(model, file);
  const head = detectCamHead(model);
  if (typeof head !== 'string') meta = asCamModel(model, { preprocessing: pre }).meta;
  return { model, meta, kind, source: file, preprocessing: pre };
}

export interface LoadModelRefOptions {
  checkpointRoot?: string;
  /** Build options when `ref` names a registered backbone (weights, includeTop, inputShape, …). */
  backbone?: BackboneBuildOptions;
  /** The preprocessing of a model without meta.json (default: its Keras application's, else 'unit' with a warning). */
  preprocessing?: PreprocessMode;
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
    return { model, meta, kind: 'backbone', source: ref, backbone: ref, preprocessing: getBackbone(ref).preprocessing };
  }
  throw new UserError(`model '${ref}': not a model folder (with ${MODEL_JSON}), a checkpoint run (with best/ or last/), ` +
    `a run under ${opts.checkpointRoot ?? defaultCheckpointRoot()}, an http(s) URL, a Keras .keras or .h5 model, or a backbone name (${Object.keys(BACKBONES).join(', ')})`);
}
