// The services behind `gapcam model summary|surgery|export`.
import type * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { CamModel, ModelMeta } from './types.js';
import { loadModelRef, type LoadedModelRef } from './refs.js';
import { CLASSES_TXT, META_JSON, saveCamModel } from './meta.js';
import { MODEL_JSON, saveLayersModelToDir } from './layers-io.js';
import { toGap, type ToGapOptions } from './surgery.js';
import { saveKerasH5 } from './keras-h5.js';
import { getBackbone, isBackboneName, type BackboneBuildOptions } from './registry.js';
import { writeFileAtomic } from '../util/atomic.js';
import { describePreprocessing } from '../data/preprocess-modes.js';
import { prepareOutFolder, TRAINING_STATE_FILES, type OutputOwner } from '../util/out-folder.js';
import { READ_LIMITS, readTextBounded } from '../util/bounded-read.js';

export interface LayerSummary {
  name: string;
  className: string;
  outputShape: (number | null)[] | (number | null)[][];
  params: number;
  trainable: boolean;
  /** Names of the layers feeding this one. */
  inputs: string[];
}

export interface ModelSummary {
  name: string;
  source: string;
  inputShape: (number | null)[];
  outputShape: (number | null)[];
  layers: LayerSummary[];
  totalParams: number;
  trainableParams: number;
  meta?: ModelMeta;
}

export function describeModel(model: tf.LayersModel, source = model.name, meta?: ModelMeta): ModelSummary {
  const layers = model.layers.map((l): LayerSummary => ({
    name: l.name,
    className: l.getClassName(),
    outputShape: l.outputShape as LayerSummary['outputShape'],
    params: l.countParams(),
    trainable: l.trainable,
    inputs: l.inboundNodes.flatMap((n) => n.inboundLayers.map((x) => x.name)),
  }));
  const trainableParams = model.trainableWeights.reduce((s, w) => s + w.shape.reduce((a: number, b) => a * (b ?? 1), 1), 0);
  return {
    name: model.name,
    source,
    inputShape: model.inputs[0].shape,
    outputShape: model.outputs[0].shape,
    layers,
    totalParams: model.countParams(),
    trainableParams,
    ...(meta ? { meta } : {}),
  };
}

function shapeText(s: LayerSummary['outputShape']): string {
  const one = (x: (number | null)[]) => `[${x.map((d) => (d === null ? 'N' : d)).join(', ')}]`;
  return Array.isArray(s[0]) ? (s as (number | null)[][]).map(one).join(' ') : one(s as (number | null)[]);
}

const fmt = (n: number) => n.toLocaleString('en-US');

/** A Keras-style text table plus the CAM meta. */
export function formatModelSummary(s: ModelSummary): string {
  const rows = s.layers.map((l) => [`${l.name} (${l.className})`, shapeText(l.outputShape), fmt(l.params), l.inputs.join(', ')]);
  const head = ['layer (type)', 'output shape', 'params', 'input'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [`model ${s.name} (${s.source})`, line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  out.push(`total params: ${fmt(s.totalParams)}  trainable: ${fmt(s.trainableParams)}  non-trainable: ${fmt(s.totalParams - s.trainableParams)}`);
  if (s.meta) {
    const m = s.meta;
    out.push(`CAM head: ${m.headKind}; feature ${m.featureLayer} → pooling ${m.poolingLayer}${m.classifierLayer ? ` → classifier ${m.classifierLayer}` : ''}; output ${m.outputIsSoftmax ? 'softmax' : 'logits'}`);
    out.push(`classes: ${m.classNames.length} (${m.classNames.slice(0, 5).join(', ')}${m.classNames.length > 5 ? ', …' : ''}); input ${m.inputSize[0]}×${m.inputSize[1]}; preprocessing ${describePreprocessing(m.preprocessing)}`);
  } else {
    out.push('CAM head: none (not GAP → Dense or conv → GAP); make one with `gapcam model surgery`');
  }
  return out.join('\n') + '\n';
}

export interface ModelRefOptions {
  checkpointRoot?: string;
  backbone?: BackboneBuildOptions;
}

export async function summarizeModel(ref: string, opts: ModelRefOptions = {}): Promise<ModelSummary> {
  const loaded = await loadModelRef(ref, opts);
  try {
    return describeModel(loaded.model, loaded.source, loaded.meta);
  } finally {
    loaded.model.dispose();
  }
}

/** `--classes`: a count ("2"), comma-separated names ("kangaroo,raccoon"), or a text file with one name a line. */
export function parseClasses(text: string | number): { classes: number; classNames?: string[] } {
  const t = String(text).trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n < 1) throw new UserError(`--classes: expected at least 1 class; got ${t}`);
    return { classes: n };
  }
  let names: string[];
  if (fs.existsSync(t) && fs.statSync(t).isFile()) {
    names = readTextBounded(t, '--classes file', READ_LIMITS.labels).split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  } else {
    names = t.split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (names.length === 0) throw new UserError(`--classes: expected a number, comma-separated class names or a file of names; got '${t}'`);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UserError(`--classes: class name '${dup}' appears twice`);
  return { classes: names.length, classNames: names };
}

/** A tfjs model folder as `model surgery` and `model export --format tfjs` write it. A folder already holding a
 *  model is replaced (file by file, atomically) only with --force; a training checkpoint (optimizer.bin,
 *  train-state.json) never, since that would break its --resume. */
function modelOutput(command: string): OutputOwner {
  return {
    command,
    marker: MODEL_JSON,
    ownsMarker: (text) => /"modelTopology"/.test(text),
    files: [META_JSON, CLASSES_TXT],
    rerun: 'refuse',
  };
}

export interface SurgeryRequest extends ModelRefOptions, Omit<ToGapOptions, 'classes' | 'classNames' | 'backbone'> {
  model: string;
  classes: string | number;
  out: string;
  /** Replace a model already in `out`. */
  force?: boolean;
}

export interface SurgeryResult {
  out: string;
  meta: ModelMeta;
  totalParams: number;
  keptLayers: number;
  /** The backbone was built from its architecture without weights: every weight of the result is random. */
  randomBackbone: boolean;
}

/** Loads a model (folder, checkpoint or backbone), cuts it and adds the GAP head, saves it with meta.json. */
export async function runSurgery(req: SurgeryRequest): Promise<SurgeryResult> {
  const { classes, classNames } = parseClasses(req.classes);
  prepareOutFolder(req.out, modelOutput('gapcam model surgery'), { force: req.force });
  const loaded = await loadModelRef(req.model, { checkpointRoot: req.checkpointRoot, backbone: { includeTop: false, ...req.backbone }, preprocessing: req.preprocessing });
  let cam: CamModel;
  const randomBackbone = loaded.kind === 'backbone' && (!req.backbone?.weights || req.backbone.weights === 'none');
  try {
    const backbone = loaded.backbone ?? loaded.meta?.backbone;
    const { model: _m, classes: _c, out: _o, checkpointRoot: _r, backbone: _b, force: _f, ...gapOpts } = req;
    cam = toGap(loaded.model, {
      ...gapOpts,
      classes,
      classNames,
      backbone,
      preprocessing: req.preprocessing ?? (backbone && isBackboneName(backbone) ? getBackbone(backbone).preprocessing : loaded.preprocessing),
    });
  } finally {
    loaded.model.dispose();
  }
  try {
    await saveCamModel(req.out, cam);
    const kept = cam.model.layers.filter((l) => !l.name.startsWith('gap_')).length;
    return { out: req.out, meta: cam.meta, totalParams: cam.model.countParams(), keptLayers: kept, randomBackbone };
  } finally {
    cam.model.dispose();
  }
}

export type ExportFormat = 'tfjs' | 'keras-h5';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['tfjs', 'keras-h5'];

export interface ExportRequest extends ModelRefOptions {
  model: string;
  format: ExportFormat;
  out: string;
  /** keras-h5: also store the architecture so `keras.models.load_model` works (default true). */
  includeModelConfig?: boolean;
  /** Replace a model (tfjs folder) or .h5 file already at `out`. */
  force?: boolean;
}

export interface ExportResult {
  files: string[];
  loaded: LoadedModelRef['kind'];
  source: string;
}

/** An .h5 export target: a folder there, or a checkpoint folder holding training state, is refused; an existing
 *  file is replaced (atomically) only with --force. */
function checkH5Target(file: string, force: boolean): void {
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (stat?.isDirectory()) throw new UserError(`--out ${file}: is a folder; expected the name of the .h5 file to write`);
  if (stat && !force) throw new UserError(`--out ${file}: already exists; pass --force to replace it, or choose another name`);
  const dir = path.dirname(path.resolve(file));
  const state = TRAINING_STATE_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  if (state.length) throw new UserError(`--out ${file}: ${dir} is a training checkpoint (holds ${state.join(', ')}); choose another folder`);
}

/** Writes a model as a tfjs Layers folder (with meta.json) or as a Keras-2-layout .h5 (the legacy `model.save`
 *  layout by default: `keras.models.load_model` and `model.load_weights` both read it; the meta goes beside it as
 *  <name>.meta.json). */
export async function exportModel(req: ExportRequest): Promise<ExportResult> {
  if (!EXPORT_FORMATS.includes(req.format)) throw new UserError(`--format: expected ${EXPORT_FORMATS.join(' or ')}; got '${req.format}'`);
  if (req.format === 'keras-h5' && /\.weights\.h5$/i.test(req.out)) {
    throw new UserError(`--out ${req.out}: Keras 3 reads '*.weights.h5' as its own format; name the file e.g. ${req.out.replace(/\.weights\.h5$/i, '.h5')}`);
  }
  const prepared = req.format === 'tfjs' ? prepareOutFolder(req.out, modelOutput('gapcam model export'), { force: req.force }) : undefined;
  const loaded = await loadModelRef(req.model, req);
  try {
    if (prepared) {
      if (loaded.meta) await saveCamModel(req.out, { model: loaded.model, meta: loaded.meta });
      else {
        // a previous model's meta.json would describe the wrong model: removed with the save
        await saveLayersModelToDir(req.out, loaded.model, prepared.rerun ? [[META_JSON, null], [CLASSES_TXT, null]] : []);
      }
      return { files: [req.out], loaded: loaded.kind, source: loaded.source };
    }
    let file = req.out;
    if (!/\.(h5|hdf5)$/i.test(file)) file = path.join(file, `${loaded.model.name}.h5`);
    checkH5Target(file, !!req.force);
    await saveKerasH5(loaded.model, file, { includeModelConfig: req.includeModelConfig ?? true });
    const files = [file];
    if (loaded.meta) {
      const metaFile = file.replace(/\.(h5|hdf5)$/i, '.meta.json');
      await writeFileAtomic(metaFile, JSON.stringify(loaded.meta, null, 2) + '\n');
      files.push(metaFile);
    }
    return { files, loaded: loaded.kind, source: loaded.source };
  } finally {
    loaded.model.dispose();
  }
}
