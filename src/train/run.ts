// The training service behind `gapcam train`: recipe (+ flags) → dataset → backbone + GAP surgery → the loop →
// evaluation of the best checkpoint → run folder. A run folder holds recipe.json (the resolved recipe),
// metrics.jsonl/csv, report.html, last/ and best/ (loadable CAM models), evaluation/ and cams/ when they ran.
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import { loadDataset, resolveDataRoot } from '../data/datasets.js';
import type { Dataset, ImageRecord, PreprocessMode, Skip } from '../data/types.js';
import { defaultCheckpointRoot } from '../paths.js';
import { UserError } from '../errors.js';
import { buildBackbone, getBackbone, isBackboneName } from '../models/registry.js';
import { loadModelRef } from '../models/refs.js';
import { loadKerasWeights } from '../models/keras-h5.js';
import { isHttpUrl, isModelFileRef } from '../models/model-files.js';
import { toGap } from '../models/surgery.js';
import type { CamModel } from '../models/types.js';
import { loadRecipe, parseRecipe, applyOverrides, type RecipeOverrides } from '../recipes/loader.js';
import { sizeHW, type Recipe } from '../recipes/schema.js';
import { resolveAtomicDir, writeFileAtomic } from '../util/atomic.js';
import { loadLastCheckpoint, readBestOnDisk, removeStaleTemps } from './checkpoint.js';
import { lockRun } from './run-lock.js';
import { checkPipelineEnvironment } from '../data/pipeline.js';
import { readMetrics } from './metrics.js';
import { datasetTrainData } from './pipeline-data.js';
import { evaluateRun, type FinalEvaluation } from './final.js';
import type { Progress } from './progress.js';
import { writeReport } from './report.js';
import { createRandom, withRandom, type SeededRandom } from './rng.js';
import { train, type TrainResult } from './trainer.js';
import { checkSelection, describeSelection, resolveSplits, selectionNotice, type ValidationRecord } from './selection.js';
import { pickCamRecords, TensorBoardSink } from './tensorboard.js';
import type { DataParallel } from '../distributed/data-parallel.js';
import { createWorkerDir } from '../distributed/worker-dir.js';

export const RECIPE_JSON = 'recipe.json';
/** Facts about the run that are not recipe settings: the head layers the surgery added, the dataset's size. */
export const RUN_JSON = 'run.json';

/** run.json: facts about a run that are not recipe settings. */
export interface RunJson {
  runName: string;
  createdAt: string;
  headLayers: string[];
  /** The dataset trained on: `spec` is what loads it again (a registered name, or an absolute path) with `dataRoot`;
   *  `root` is where its files are. */
  dataset: { name: string; spec?: string; dataRoot?: string; root: string; classes: number; train: number; val: number };
  /** Which images selected the best checkpoint (runs before gapcam recorded it have none). */
  validation?: ValidationRecord;
}

/** A dataset reference that loads the same dataset from any folder: a path that exists becomes absolute. */
function datasetSpec(ref: string): string {
  const bare = ref.replace(/^[a-z]+:/, '');
  return bare !== ref || !fs.existsSync(ref) ? ref : path.resolve(ref);
}

/** Reads <runDir>/run.json (a broken file is one line naming it). */
export function readRunJson(runDir: string): RunJson {
  const file = path.join(runDir, RUN_JSON);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunJson;
  } catch (err) {
    throw new UserError(`${file}: expected the run's JSON facts, ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'found no file' : `found invalid JSON (${(err as Error).message.split('\n')[0]})`}`);
  }
}

export interface TrainRunOptions {
  /** Recipe name (recipes/<name>.json) or path; not needed with `resume`. */
  recipe?: string;
  overrides?: RecipeOverrides;
  dataRoot?: string;
  /** Where run folders go (checkpoints/). */
  checkpointRoot: string;
  /** Run folder name (default `<recipe>-<yyyymmdd-hhmmss>`). */
  runName?: string;
  /** A run name under checkpointRoot, or a run folder: continue it from its last checkpoint. */
  resume?: string;
  maxSteps?: number;
  signal?: AbortSignal;
  progress?: Progress;
  engine?: string;
  /** Decoded-image cache (default .cache/images; null: none). */
  cacheDir?: string | null;
  skipBadImages?: boolean;
  /** Write TensorBoard event files into the run folder (default true). */
  tensorboard?: boolean;
  /** Allow recipe data.valSplit 'test' (selection on the test split); every report then says so first. */
  selectOnTest?: boolean;
  /** Multi-worker training (src/distributed). Only the chief locks and writes the run folder; the other workers read
   *  it (--resume from the chief's last/) and write their unused copies to a temporary folder removed at the end. */
  parallel?: DataParallel;
}

export interface TrainRunResult extends TrainResult {
  runName: string;
  recipe: Recipe;
  dataset: Dataset;
  classNames: string[];
  numTrain: number;
  numVal: number;
  /** Which images selected the best checkpoint (also in run.json). */
  validation: ValidationRecord;
  /** The line every report of this run starts with (selection on the test split), if any. */
  notice?: string;
}

function timestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}

/** The run folder a --resume value names. */
export function resolveRunDir(ref: string, checkpointRoot: string): string {
  const candidates = path.isAbsolute(ref) || ref.startsWith('.') ? [path.resolve(ref)] : [path.join(checkpointRoot, ref), path.resolve(ref)];
  for (const c of candidates) if (fs.existsSync(path.join(c, RECIPE_JSON))) return c;
  throw new UserError(`--resume: no run '${ref}' (looked for ${candidates.map((c) => path.join(c, RECIPE_JSON)).join(' and ')})`);
}

/** The recipe's backbone before surgery: a registered backbone built (with its weights) for the input size, or a
 *  model file / folder / URL loaded with its own weights (re-initialised with model.reinitialize; a Keras weights file
 *  given as model.weights loaded on top by layer name). */
interface RecipeBackbone {
  model: tf.LayersModel;
  /** The recipe's preprocessing, else the backbone's (registered, Keras application, else 'unit' with a warning). */
  preprocessing: PreprocessMode;
  /** The recipe's cutAt, else the registered backbone's (undefined: toGap finds a Keras application's own). */
  cutAt?: string;
  /** Rebuild the kept part for the recipe's input (a model file made for another size). */
  inputShape?: [number, number, number];
}

async function loadRecipeBackbone(recipe: Recipe, inputShape: [number, number, number]): Promise<RecipeBackbone> {
  const ref = recipe.model.backbone;
  const weights = recipe.model.weights === 'none' ? undefined : recipe.model.weights;
  if (!isModelFileRef(ref)) {
    const spec = getBackbone(ref);
    if (!weights && spec.needsWeights) {
      throw new UserError(`recipe model.weights: backbone '${ref}' has no architecture of its own; give its model folder (--weights)`);
    }
    const model = await buildBackbone(ref, { weights, inputShape, includeTop: false });
    return { model, preprocessing: recipe.data.preprocessing ?? spec.preprocessing, cutAt: recipe.model.cutAt ?? spec.defaultCutLayer };
  }
  if (!isHttpUrl(ref) && !fs.existsSync(ref)) {
    throw new UserError(`recipe model.backbone: ${ref} does not exist; expected a Keras .keras/.h5 model, a tfjs model folder or model.json, an http(s) URL, or a registered backbone (gapcam models)`);
  }
  if (weights === 'imagenet') {
    throw new UserError(`recipe model.weights: 'imagenet' is for registered backbones; ${path.basename(ref)} brings its own weights (or give a Keras weights .h5 file)`);
  }
  const loaded = await loadModelRef(ref, { preprocessing: recipe.data.preprocessing });
  let model = loaded.model;
  try {
    if (recipe.model.reinitialize) {
      // A fresh model from the architecture alone: every variable drawn from its initializer (seeded by the run).
      const fresh = tf.LayersModel.fromConfig(tf.LayersModel, model.getConfig() as unknown as tf.serialization.ConfigDict) as tf.LayersModel;
      model.dispose();
      model = fresh;
    }
    if (weights) await loadKerasWeights(model, weights, { match: 'name', allowMissing: true });
  } catch (err) {
    model.dispose();
    throw err;
  }
  const same = model.inputs[0].shape.slice(1).every((d, i) => d === inputShape[i]);
  return { model, preprocessing: loaded.preprocessing, cutAt: recipe.model.cutAt, ...(same ? {} : { inputShape }) };
}

/** Builds the recipe's model: backbone (+ weights) → GAP surgery. Returns the CAM model and the new head's layers;
 *  meta.preprocessing is the one the run uses (the recipe's, else the backbone's). */
export async function buildRecipeModel(recipe: Recipe, classNames: string[], rng: SeededRandom): Promise<{ cam: CamModel; headLayers: string[] }> {
  const [h, w] = sizeHW(recipe.data.inputSize);
  return withRandom(rng, async () => {
    const backbone = await loadRecipeBackbone(recipe, [h, w, 3]);
    try {
      const kept = new Set(backbone.model.layers.map((l) => l.name));
      const cam = toGap(backbone.model, {
        cutAt: backbone.cutAt,
        convFilters: recipe.model.head.convFilters,
        kernelSize: recipe.model.head.kernelSize,
        classNames,
        dropout: recipe.model.head.dropout || undefined,
        preprocessing: backbone.preprocessing,
        backbone: recipe.model.backbone,
        recipe: recipe.name,
        inputSize: [h, w],
        inputShape: backbone.inputShape,
      });
      const headLayers = cam.model.layers.filter((l) => !kept.has(l.name) && l.trainableWeights.length > 0).map((l) => l.name);
      const pretrained = recipe.model.weights !== 'none' || (isModelFileRef(recipe.model.backbone) && !recipe.model.reinitialize);
      if (recipe.model.init === 'he-normal') heNormalInit(cam.model, pretrained ? headLayers : cam.model.layers.map((l) => l.name));
      if (recipe.model.head.classifierInit === 'zeros' && cam.meta.classifierLayer) zeroInit(cam.model, cam.meta.classifierLayer);
      return { cam, headLayers };
    } finally {
      backbone.model.dispose();
    }
  });
}

/** Re-initialises the kernels of the named conv/dense layers from N(0, 2/fan-in) (He et al. 2015) and zeroes their
 *  biases; draws from Math.random (the run's seeded generator), so it is deterministic given the seed. */
export function heNormalInit(model: tf.LayersModel, layerNames: readonly string[]): void {
  for (const name of layerNames) {
    const layer = model.getLayer(name);
    const cls = layer.getClassName();
    if (cls !== 'Conv2D' && cls !== 'Dense') continue;
    const [kernel, ...rest] = layer.getWeights();
    const fanIn = kernel.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const fresh = tf.tidy(() => [tf.randomNormal(kernel.shape, 0, Math.sqrt(2 / fanIn)), ...rest.map((w) => tf.zerosLike(w))]);
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
}

/** Sets every weight of one layer to zero. */
export function zeroInit(model: tf.LayersModel, layerName: string): void {
  const layer = model.getLayer(layerName);
  const zeros = layer.getWeights().map((w) => tf.zerosLike(w));
  layer.setWeights(zeros);
  tf.dispose(zeros);
}

/** Reads a run's recipe.json (with the command line's overrides applied). */
function readRunRecipe(runDir: string, overrides: RecipeOverrides): Recipe {
  const file = path.join(runDir, RECIPE_JSON);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError(`--resume: ${file} is not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  return applyOverrides(parseRecipe(raw, file, (raw as { name?: string }).name), overrides);
}

/** The first place two JSON values differ (`model.backbone: "vgg16" vs "darknet-tiny"`), or undefined. */
export function firstDifference(a: unknown, b: unknown, at = ''): string | undefined {
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k);
      if (d) return d;
    }
    return undefined;
  }
  return a === b ? undefined : `${at || 'recipe'}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

/** Refuses a checkpoint whose model is not what the run's recipe builds (another backbone, input size, cut or head):
 *  training it under this recipe would silently mix two runs. */
export function checkCheckpointMatchesRecipe(cam: CamModel, recipe: Recipe, headLayers: readonly string[], where: string): void {
  const bad = (what: string, expected: unknown, found: unknown) =>
    new UserError(`--resume: ${where} does not match the run's recipe: ${what} should be ${JSON.stringify(expected)}, the checkpoint has ${JSON.stringify(found)}`);
  const m = cam.meta;
  if (m.backbone !== undefined && m.backbone !== recipe.model.backbone) throw bad('the backbone', recipe.model.backbone, m.backbone);
  const hw = sizeHW(recipe.data.inputSize);
  if (m.inputSize[0] !== hw[0] || m.inputSize[1] !== hw[1]) throw bad('the input size (height, width)', hw, m.inputSize);
  const has = (name: string) => cam.model.layers.some((l) => l.name === name);
  const cutAt = recipe.model.cutAt ?? (isBackboneName(recipe.model.backbone) ? getBackbone(recipe.model.backbone).defaultCutLayer : undefined);
  if (cutAt !== undefined && !has(cutAt)) throw bad('the cut layer', cutAt, `no layer '${cutAt}'`);
  for (const name of headLayers) if (!has(name)) throw bad('the head layers', headLayers, cam.model.layers.map((l) => l.name).slice(-4));
  const { convFilters, kernelSize } = recipe.model.head;
  if (convFilters > 0) {
    const conv = cam.model.getLayer(m.featureLayer).getConfig() as { filters?: number; kernelSize?: number | number[] };
    if (conv.filters !== convFilters) throw bad('head.convFilters', convFilters, conv.filters);
    const k = Array.isArray(conv.kernelSize) ? conv.kernelSize[0] : conv.kernelSize;
    if (k !== kernelSize) throw bad('head.kernelSize', kernelSize, k);
  }
}

/** The run folder, recipe and start mode a call names, checked before anything is written. */
function planRun(o: TrainRunOptions): { recipe: Recipe; runDir: string } {
  checkPipelineEnvironment();
  if (o.resume) {
    const runDir = resolveRunDir(o.resume, o.checkpointRoot);
    const recipe = readRunRecipe(runDir, o.overrides ?? {});
    if (o.recipe) {
      // A recipe named together with --resume must be the run's own: training a run under another recipe mixes two.
      const named = loadRecipe(o.recipe, o.overrides ?? {});
      // recipe.json records the preprocessing the model used, which a recipe may leave to the backbone's default
      const preprocessing = named.data.preprocessing ?? recipe.data.preprocessing;
      const diff = firstDifference({ ...named, name: undefined, data: { ...named.data, preprocessing } }, { ...recipe, name: undefined });
      if (diff) {
        throw new UserError(`--resume ${o.resume}: recipe '${o.recipe}' differs from the run's own (${diff}); ` +
          `drop the recipe argument to continue with the run's, or start a new run`);
      }
    }
    return { recipe, runDir };
  }
  if (!o.recipe) throw new UserError('train: name a recipe (gapcam recipes lists them) or give --resume <run>');
  const recipe = loadRecipe(o.recipe, o.overrides ?? {});
  const runName = o.runName ?? `${recipe.name}-${timestamp()}`;
  if (!/^[\w.-]+$/.test(runName)) throw new UserError(`--run-name: use letters, digits, '.', '_' and '-' only; got '${runName}'`);
  return { recipe, runDir: path.join(o.checkpointRoot, runName) };
}

/** The best/ (or its best.old copy) of a run that has no last/, with the epoch it records; undefined otherwise. */
function bestWithoutLast(runDir: string): { dir: string; epoch: string } | undefined {
  if (resolveAtomicDir(path.join(runDir, 'last'))) return undefined;
  const dir = resolveAtomicDir(path.join(runDir, 'best'));
  if (!dir) return undefined;
  let epoch = '';
  try {
    const best = readBestOnDisk(runDir)?.best;
    if (best) epoch = ` (epoch ${best.epoch})`;
  } catch {
    // a best/ whose state cannot be read is still the user's folder
  }
  return { dir, epoch };
}

/** Trains per a recipe (or resumes a run) holding the run folder's lock, then runs `after` (still locked). */
async function trainLocked<T>(o: TrainRunOptions, after: (res: TrainRunResult) => Promise<T>): Promise<T> {
  const { recipe, runDir } = planRun(o);
  const runName = path.basename(runDir);
  if (o.parallel && !o.parallel.isChief) {
    // The chief alone holds the lock and tidies the folder; this worker only reads it (see trainUnlocked).
    return after(await trainUnlocked(o, recipe, runDir));
  }
  const lock = lockRun(runDir);
  try {
    if (!o.resume && fs.existsSync(path.join(runDir, RECIPE_JSON))) {
      // A run killed before its first checkpoint can be started again under its name; one with a checkpoint cannot.
      if (resolveAtomicDir(path.join(runDir, 'last'))) {
        throw new UserError(`run folder ${runDir} already exists: continue it with --resume ${runName} or pick another --run-name`);
      }
      // A best/ without last/ (killed between the two saves of the first epoch) is a trained model: a restart would
      // have to replace it, so the run counts as having a checkpoint and is refused (train has no --force).
      const best = bestWithoutLast(runDir);
      if (best) {
        throw new UserError(`run folder ${runDir} holds the model ${best.dir}${best.epoch} but no last/ checkpoint (it stopped ` +
          `between the two saves of its first epoch), and a restart would replace it: start a new run with another --run-name, ` +
          `or move ${best.dir} out of the run folder to start ${runName} again`);
      }
      o.progress?.log(`run ${runName} has no checkpoint yet (it stopped before its first one): starting it again`);
    }
    removeStaleTemps(runDir);
    const res = await trainUnlocked(o, recipe, runDir);
    return await after(res);
  } finally {
    lock.release();
  }
}

/** Trains per a recipe (or resumes a run); see the file header. One process per run folder (its lock). */
export async function runTraining(o: TrainRunOptions): Promise<TrainRunResult> {
  return trainLocked(o, async (res) => res);
}

async function trainUnlocked(o: TrainRunOptions, recipe: Recipe, readDir: string): Promise<TrainRunResult> {
  const runName = path.basename(readDir);
  let resumeFrom: Awaited<ReturnType<typeof loadLastCheckpoint>> | undefined;
  if (o.resume) {
    resumeFrom = await loadLastCheckpoint(readDir).catch((err) => {
      if (err instanceof UserError && /has no last checkpoint/.test(err.message)) {
        const best = bestWithoutLast(readDir);
        if (best) {
          throw new UserError(`--resume: run ${runName} has no last/ checkpoint to continue from, only the model ${best.dir}${best.epoch} ` +
            `(saved before last/ in its first epoch, without optimizer state); use it as a model, or start a new run with another --run-name`);
        }
        throw new UserError(`--resume: run ${runName} has no checkpoint yet (it stopped before its first one); start it again with: ` +
          `gapcam train ${path.join(readDir, RECIPE_JSON)} --run-name ${runName}${o.checkpointRoot === defaultCheckpointRoot() ? '' : ` --checkpoints ${o.checkpointRoot}`}`);
      }
      throw err;
    });
  }
  const recorded = o.resume && fs.existsSync(path.join(readDir, RUN_JSON)) ? readRunJson(readDir) : undefined;
  let dataset: Dataset, trainRecs: ImageRecord[], valRecs: ImageRecord[], validation: ValidationRecord;
  try {
    // a run started with --select-on-test resumes without the flag
    const selectOnTest = o.selectOnTest || recorded?.validation?.source === 'test';
    checkSelection(recipe, selectOnTest);
    dataset = await loadDataset(recipe.data.dataset, { dataRoot: o.dataRoot, skipBadImages: o.skipBadImages });
    ({ train: trainRecs, val: valRecs, validation } = resolveSplits(dataset, recipe, { selectOnTest, recorded: recorded?.validation }));
  } catch (err) {
    resumeFrom?.cam.model.dispose();
    throw err;
  }

  // Where this process writes: the run folder on the chief (or alone), a temporary folder on the other workers.
  const runDir = o.parallel && !o.parallel.isChief ? createWorkerDir(o.parallel.group.rank) : readDir;
  const runFile = path.join(runDir, RUN_JSON);
  let cam: CamModel;
  let headLayers: string[];
  let resume;
  let rng: SeededRandom | undefined;
  if (resumeFrom) {
    const ck = resumeFrom;
    cam = ck.cam;
    resume = { state: ck.state, optimizer: ck.optimizer };
    headLayers = recorded?.headLayers ?? [];
    try {
      if (cam.meta.classNames.join('\n') !== dataset.classNames.join('\n')) {
        throw new UserError(`--resume: the checkpoint's ${cam.meta.classNames.length} classes differ from dataset '${dataset.name}' (${dataset.classNames.length} classes)`);
      }
      checkCheckpointMatchesRecipe(cam, recipe, headLayers, ck.dir);
    } catch (err) {
      cam.model.dispose();
      throw err;
    }
  } else {
    rng = createRandom(recipe.seed);
    ({ cam, headLayers } = await buildRecipeModel(recipe, dataset.classNames, rng));
    const run: RunJson = {
      runName, createdAt: new Date().toISOString(), headLayers,
      dataset: { name: dataset.name, spec: datasetSpec(recipe.data.dataset), dataRoot: resolveDataRoot(o.dataRoot), root: dataset.root,
        classes: dataset.classNames.length, train: trainRecs.length, val: valRecs.length },
      validation,
    };
    await writeFileAtomic(runFile, JSON.stringify(run, null, 2) + '\n');
  }
  // The run's preprocessing is the model's (the recipe's when it set one, else the backbone's): recipe.json records it.
  recipe = { ...recipe, data: { ...recipe.data, preprocessing: cam.meta.preprocessing } };
  const data = datasetTrainData({ recipe, dataset, train: trainRecs, val: valRecs, cacheDir: o.cacheDir, skipBadImages: o.skipBadImages });
  try {
    await writeFileAtomic(path.join(runDir, RECIPE_JSON), JSON.stringify(recipe, null, 2) + '\n');
    const sinks = o.tensorboard === false || runDir !== readDir ? [] : [await TensorBoardSink.create({ runDir, cam, headLayers,
      camRecords: pickCamRecords(valRecs.length ? valRecs : trainRecs) })];
    const result = await train({
      recipe, cam, data, runDir, headLayers, rng, resume, maxSteps: o.maxSteps, signal: o.signal, progress: o.progress, engine: o.engine, sinks,
      parallel: o.parallel,
    });
    // --skip-bad-images leaves a trace: what the loader and the pipeline left out, one file per line with the reason.
    // On a cluster each worker decodes only its slices: every worker's list goes to the chief, which writes them all.
    const own = data.skipped?.() ?? [];
    const skipped = o.parallel ? mergeSkips(await o.parallel.group.gatherJson(own)) : own;
    if (skipped.length && runDir === readDir) {
      await writeFileAtomic(path.join(runDir, 'skipped.txt'), skipped.map((s) => `${s.file}\t${s.reason}\n`).join(''));
    } else if (own.length) {
      o.progress?.log(`worker ${o.parallel?.group.rank}: left out ${own.length} image(s) (listed in the chief's skipped.txt): ${own.map((s) => s.file).join(', ')}`);
    }
    return { ...result, runDir: readDir, lastDir: path.join(readDir, 'last'), bestDir: path.join(readDir, 'best'), runName, recipe, dataset,
      classNames: dataset.classNames, numTrain: trainRecs.length, numVal: valRecs.length, validation, notice: selectionNotice(recipe) };
  } finally {
    cam.model.dispose();
    data.dispose?.();
    if (runDir !== readDir) fs.rmSync(runDir, { recursive: true, force: true });
  }
}

/** Rewrites report.html with extra headline numbers (e.g. the final evaluation). */
export async function finishReport(runDir: string, recipe: Recipe, status: string, final: Record<string, string | number>, engine?: string): Promise<void> {
  await writeReport({ runName: path.basename(runDir), runDir, rows: readMetrics(runDir), recipe, status, final, engine, notice: selectionNotice(recipe) });
}

export interface TrainAndEvaluateOptions extends TrainRunOptions {
  /** Skip the final evaluation and CAM images even if the recipe asks for them. */
  noEvaluation?: boolean;
  onEvalProgress?: (done: number, total: number) => void;
}

export interface TrainAndEvaluateResult {
  train: TrainRunResult;
  /** `selectedOn` says which images chose the evaluated checkpoint. */
  evaluation?: FinalEvaluation & { selectedOn: string };
}

/** Training, then (when it completed) the recipe's final evaluation; report.html gets the headline numbers. */
export async function trainAndEvaluate(o: TrainAndEvaluateOptions): Promise<TrainAndEvaluateResult> {
  return trainLocked(o, (train) => evaluateTrained(o, train));
}

async function evaluateTrained(o: TrainAndEvaluateOptions, train: TrainRunResult): Promise<TrainAndEvaluateResult> {
  // The final evaluation runs on the chief alone (not sharded across the workers).
  if (train.status !== 'completed' || o.noEvaluation || (o.parallel && !o.parallel.isChief)) return { train };
  const evaluation = await evaluateRun({ runDir: train.runDir, recipe: train.recipe, dataset: train.dataset, dataRoot: o.dataRoot,
    onProgress: o.onEvalProgress });
  const selectedOn = describeSelection(train.validation);
  const final: Record<string, string | number> = {
    'checkpoint selected on': selectedOn,
    'epochs done': train.epochsDone,
    'training seconds': Number(train.seconds.toFixed(1)),
    'images/s (this session)': Number(train.imagesPerSec.toFixed(1)),
  };
  if (train.best?.valAcc !== undefined) final[`best validation top-1 (${train.validation.split})`] = `${(train.best.valAcc * 100).toFixed(2)}% (epoch ${train.best.epoch})`;
  const which = `${train.recipe.evaluation.split}, ${path.basename(evaluation.checkpoint)} selected on ${train.validation.split}`;
  if (evaluation.camThreshold) final['CAM threshold τ (chosen on val, MaxBoxAcc)'] = `${evaluation.camThreshold.value.toFixed(2)} (${evaluation.camThreshold.images} images)`;
  for (const [k, v] of Object.entries(evaluation.headline)) final[`${k} (${which})`] = `${v.toFixed(2)}%`;
  if (evaluation.cams) final['CAM images'] = `${path.relative(train.runDir, evaluation.cams.gallery)} (${evaluation.cams.images} images)`;
  await finishReport(train.runDir, train.recipe, `finished ${train.epochsDone} epochs; evaluated ${path.basename(evaluation.checkpoint)}`, final, o.engine);
  return { train, evaluation: { ...evaluation, selectedOn } };
}

/** One list of the images several workers left out: each file once (the first worker's reason), in rank order. */
export function mergeSkips(lists: readonly Skip[][]): Skip[] {
  const byFile = new Map<string, Skip>();
  for (const list of lists) for (const s of list) if (!byFile.has(s.file)) byFile.set(s.file, s);
  return [...byFile.values()];
}
