// gapcam's meta.json beside a Layers model (classes, preprocessing, CAM head), and loading a CAM model with it:
// meta.json when present, else the detected head with classes.txt.
import type * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { CamModel, ModelMeta, HeadKind } from './types.js';
import { PREPROCESS_MODES, preprocessingProblem } from '../data/preprocess-modes.js';
import { assumedPreprocessing } from './keras-apps.js';
import { asCamModel, detectCamHead, type AsCamModelOptions } from './head.js';
import { companionOverride, isUrl, loadLayersModelFromDir, loadLayersModelFromUrl, MODEL_JSON, modelJsonPathOf, readJsonFile, writeLayersModelFiles } from './layers-io.js';
import { READ_LIMITS, readTextBounded } from '../util/bounded-read.js';

export const META_JSON = 'meta.json';
export const CLASSES_TXT = 'classes.txt';

/** Saves a CAM model into `dir` (created when missing): model.json + shards + meta.json (+ classes.txt for people and
 *  other tools), replacing a model there as one step (writeLayersModelFiles); nothing else in `dir` is touched. */
export async function saveCamModel(dir: string, cam: CamModel): Promise<void> {
  validateMeta(cam.meta, 'saveCamModel meta');
  fs.mkdirSync(dir, { recursive: true });
  await writeLayersModelFiles(dir, cam.model, [
    [META_JSON, JSON.stringify(cam.meta, null, 2) + '\n'],
    [CLASSES_TXT, cam.meta.classNames.join('\n') + '\n'],
  ]);
}

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
  if (preprocessingProblem(m.preprocessing)) throw fail('preprocessing', `${PREPROCESS_MODES.join('|')} or {mean, std, channelOrder, range}`);
  if (!Array.isArray(m.inputSize) || m.inputSize.length !== 2 || !m.inputSize.every((v) => Number.isInteger(v) && v > 0)) {
    throw fail('inputSize', '[height, width] in pixels');
  }
  if (!HEAD_KINDS.includes(m.headKind as HeadKind)) throw fail('headKind', HEAD_KINDS.join('|'));
  for (const f of ['featureLayer', 'poolingLayer']) if (typeof m[f] !== 'string') throw fail(f, 'a layer name');
  if (m.headKind === 'gap-dense' && typeof m.classifierLayer !== 'string') throw fail('classifierLayer', 'a layer name (gap-dense head)');
  if (typeof m.outputIsSoftmax !== 'boolean') throw fail('outputIsSoftmax', 'true or false');
}

/** Reads and checks `dir/meta.json`; undefined when absent. (Right after a crash inside a save that replaced the
 *  model, the new model.json's own copy stands in for the previous model's meta.json: companionOverride.) */
export function readMeta(dir: string): ModelMeta | undefined {
  const file = path.join(dir, META_JSON);
  const override = companionOverride(dir, META_JSON);
  if (override?.text === null) return undefined;
  let meta: unknown;
  if (override) {
    try {
      meta = JSON.parse(override.text);
    } catch (err) {
      throw new UserError(`model meta: ${path.join(dir, MODEL_JSON)}'s copy of ${META_JSON} is not valid JSON: ${(err as Error).message.split('\n')[0]}`);
    }
  } else {
    if (!fs.existsSync(file)) return undefined;
    meta = readJsonFile<unknown>(file, 'model meta');
  }
  validateMeta(meta, file);
  return meta;
}

/** Class names from `dir/classes.txt` (one a line; blank trailing lines ignored); undefined when absent (see
 *  readMeta for a save cut short). */
export function readClassesTxt(dir: string): string[] | undefined {
  const file = path.join(dir, CLASSES_TXT);
  const override = companionOverride(dir, CLASSES_TXT);
  if (override?.text === null || (!override && !fs.existsSync(file))) return undefined;
  const text = override ? override.text! : readTextBounded(file, 'class list', READ_LIMITS.labels);
  const lines = text.split(/\r?\n/).map((l) => l.trim());
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
  return asCamModel(model, { ...opts, classNames, preprocessing: opts.preprocessing ?? assumedPreprocessing(model, where) });
}
