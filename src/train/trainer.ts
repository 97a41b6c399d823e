// The training loop: a custom loop (tf.variableGrads + our optimizer), not model.fit, so that per-layer learning
// rates, frozen layers, L2 decay, schedules, exact resume, interruption and divergence checks all really apply.
//
// One step: forward in training mode → cross-entropy → gradients of the unfrozen trainable variables → loss checked
// finite → optimizer update with per-parameter lr multipliers → the head's weights checked finite (a NaN anywhere
// reaches the head within a step). Divergence stops the run without saving anything, keeping the last good checkpoint.
// After each epoch: validation top-1 on the held-out split, every weight and the validation loss checked finite,
// metrics rows, then — when validation improved — `best`, and after it `last` (weights + optimizer slots + counters +
// RNG state + the best record); report.html rewritten. best/ is written before last/ records it, so at every instant
// last/ names no best model that is not on disk (and a resume takes best/'s own record as the truth).
import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { CamModel } from '../models/types.js';
import type { Recipe } from '../recipes/schema.js';
import { saveCheckpoint, removeStaleTemps, readBestOnDisk, type TrainState, type EpochAccumulator } from './checkpoint.js';
import { resolveAtomicDir } from '../util/atomic.js';
import type { LabelledBatch, TrainData } from './data.js';
import { MetricsLog, type EpochRow, type MetricsRow, type MetricsSink } from './metrics.js';
import { TrainOptimizer, type OptimizerState, type Param } from './optimizer.js';
import { SilentProgress, type Progress } from './progress.js';
import { writeReport } from './report.js';
import { selectionNotice } from './selection.js';
import { createRandom, installRandom, type SeededRandom } from './rng.js';
import { learningRateAt } from './schedule.js';
import { FusedGradients, fusedStepUnsupported } from '../perf/sequential-step.js';
import type { DataParallel } from '../distributed/data-parallel.js';

/** Training stopped because the loss, the validation loss or a weight stopped being a finite number. */
export class TrainingDivergedError extends UserError {
  constructor(message: string, readonly step: number, readonly lr: number) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export interface ResumeFrom {
  state: TrainState;
  optimizer?: OptimizerState;
}

export interface TrainOptions {
  recipe: Recipe;
  /** The model to train (trained in place) and the meta saved with it. */
  cam: CamModel;
  data: TrainData;
  /** The run folder (`checkpoints/<run>`). */
  runDir: string;
  /** Layers that get recipe.headLrMultiplier (the layers the GAP surgery added). */
  headLayers?: readonly string[];
  /** Math.random's generator for a fresh run (pass the one the model was initialised with so the stream goes on);
   *  default: seeded from recipe.seed. Ignored when resuming (the saved state is used). */
  rng?: SeededRandom;
  /** Continue from a checkpoint's state (the cam must be that checkpoint's model). */
  resume?: ResumeFrom;
  /** Stop after this many steps in this session (smoke tests); a checkpoint is written. */
  maxSteps?: number;
  /** Aborting finishes the current step, writes `last` and returns status 'interrupted'. */
  signal?: AbortSignal;
  progress?: Progress;
  /** Shown in the report. */
  engine?: string;
  /** Also given every metrics row (TensorBoard, …); closed when training ends. */
  sinks?: readonly MetricsSink[];
  /** Synchronous data parallelism over worker processes (src/distributed): `data` is sharded, gradients, losses,
   *  BatchNorm statistics and validation sums are all-reduced. Absent: one process. */
  parallel?: DataParallel;
}

export interface TrainResult {
  status: 'completed' | 'interrupted' | 'max-steps';
  runDir: string;
  lastDir: string;
  bestDir: string;
  /** Epochs fully done (trained and validated). */
  epochsDone: number;
  globalStep: number;
  best: TrainState['best'];
  lastEpoch?: EpochRow;
  /** Training seconds over every session of the run. */
  seconds: number;
  /** Mean training throughput of this session. */
  imagesPerSec: number;
}

/** Where a layer name matches a prefix list. */
function matchesPrefix(name: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => name === p || name.startsWith(p));
}

/** The trainable parameters for `epoch`, with their lr multipliers and decay; frozen layers are left out. */
export function collectParams(model: tf.LayersModel, recipe: Recipe, headLayers: readonly string[], epoch: number): { params: Param[]; frozenLayers: string[] } {
  const freezeActive = recipe.freeze.layers.length > 0 && (recipe.freeze.epochs === null || epoch < recipe.freeze.epochs);
  const head = new Set(headLayers);
  const multPrefixes = Object.keys(recipe.lrMultipliers).sort((a, b) => b.length - a.length);
  const params: Param[] = [];
  const frozenLayers: string[] = [];
  for (const layer of model.layers) {
    const weights = layer.trainableWeights;
    if (weights.length === 0) continue;
    if (freezeActive && matchesPrefix(layer.name, recipe.freeze.layers)) {
      frozenLayers.push(layer.name);
      continue;
    }
    let lrMult = 1;
    if (head.has(layer.name)) lrMult = recipe.headLrMultiplier;
    else {
      const p = multPrefixes.find((q) => layer.name.startsWith(q));
      if (p !== undefined) lrMult = recipe.lrMultipliers[p];
    }
    for (const lv of weights) {
      const variable = lv.read() as tf.Variable;
      const short = lv.originalName.split('/').pop() ?? lv.originalName;
      const isKernel = variable.rank >= 2;
      params.push({
        key: `${layer.name}/${short}`,
        variable,
        lrMult,
        decay: isKernel || recipe.decayBiases ? recipe.weightDecay : 0,
      });
    }
  }
  return { params, frozenLayers };
}

/** Mean cross-entropy of a batch; `outputIsSoftmax` models are clipped to [1e-7, 1 − 1e-7] as Keras does. */
export function crossEntropy(out: tf.Tensor2D, labels: tf.Tensor1D, numClasses: number, outputIsSoftmax: boolean): tf.Scalar {
  return tf.tidy(() => {
    const oneHot = tf.oneHot(labels, numClasses);
    if (!outputIsSoftmax) return tf.losses.softmaxCrossEntropy(oneHot, out) as tf.Scalar;
    const p = tf.clipByValue(out, 1e-7, 1 - 1e-7);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.log(p)), -1))) as tf.Scalar;
  });
}

export function stepsPerEpochOf(data: TrainData, batchSize: number): number {
  return Math.max(1, Math.ceil(data.trainSize / batchSize));
}

function freshAccum(): EpochAccumulator {
  return { lossSum: 0, correct: 0, seen: 0, seconds: 0 };
}

/** The first weight of `model` (as 'layer/name') holding NaN or ±Inf, or undefined when all are finite. One
 *  device→host read of one flag per weight. */
export async function firstNonFiniteWeight(model: tf.LayersModel): Promise<string | undefined> {
  const named = model.layers.flatMap((l) => l.weights.filter((w) => w.dtype === 'float32')
    .map((w) => ({ name: `${l.name}/${w.originalName.split('/').pop()}`, w })));
  if (named.length === 0) return undefined;
  const flags = tf.tidy(() => tf.stack(named.map(({ w }) => tf.all(tf.isFinite(w.read())))));
  const ok = await flags.data();
  flags.dispose();
  const i = ok.findIndex((v) => !v);
  return i < 0 ? undefined : named[i].name;
}

/** Top-1 accuracy and mean loss over the validation batches (undefined when interrupted half-way). */
export async function validate(model: tf.LayersModel, batches: AsyncIterable<LabelledBatch>, numClasses: number,
  outputIsSoftmax: boolean, signal?: AbortSignal): Promise<{ loss: number; acc: number; n: number } | undefined> {
  let lossSum = 0, correct = 0, n = 0;
  for await (const b of batches) {
    const [l, c] = tf.tidy(() => {
      const y = tf.tensor1d(b.labels, 'int32');
      const out = model.apply(b.images, { training: false }) as tf.Tensor2D;
      const loss = tf.mul(crossEntropy(out, y, numClasses, outputIsSoftmax), b.labels.length);
      const corr = tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), y), 'float32'));
      return [loss, corr];
    });
    b.images.dispose();
    lossSum += (await l.data())[0];
    correct += (await c.data())[0];
    n += b.labels.length;
    l.dispose();
    c.dispose();
    if (signal?.aborted) return undefined;
  }
  return n === 0 ? undefined : { loss: lossSum / n, acc: correct / n, n };
}

/** Trains `opts.cam.model` per `opts.recipe`; see the file comment. */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { recipe, cam, runDir, parallel } = opts;
  const data = parallel ? parallel.shard(opts.data, recipe.batchSize) : opts.data;
  const model = cam.model;
  const progress = opts.progress ?? new SilentProgress();
  const headLayers = opts.headLayers ?? [];
  const numClasses = data.numClasses;
  const outShape = model.outputs[0].shape;
  if (outShape[outShape.length - 1] !== numClasses) {
    throw new UserError(`the model outputs ${outShape[outShape.length - 1]} classes but the dataset has ${numClasses}`);
  }
  const training = recipe.batchNorm === 'train';
  const spe = stepsPerEpochOf(data, recipe.batchSize);
  const lastDir = path.join(runDir, 'last');
  const bestDir = path.join(runDir, 'best');
  const schedCtx = { baseLr: recipe.lr, stepsPerEpoch: spe, epochs: recipe.epochs };
  removeStaleTemps(runDir);

  const optimizer = new TrainOptimizer(recipe.optimizer);
  let state: TrainState;
  let rng: SeededRandom;
  if (opts.resume) {
    state = structuredClone(opts.resume.state);
    if (state.stepsPerEpoch !== spe) {
      throw new UserError(`--resume: the run had ${state.stepsPerEpoch} steps per epoch, now ${spe} (dataset or --batch-size changed)`);
    }
    rng = createRandom(recipe.seed, state.rng);
    // best/ is saved before last/ records it: after a kill between the two, best/ is one epoch ahead of last/'s
    // record (and checkpoints from older versions may be behind it). What is on disk wins.
    const onDisk = readBestOnDisk(runDir)?.best ?? null;
    if (onDisk?.epoch !== state.best?.epoch || onDisk?.metric !== state.best?.metric) {
      progress.log(`best checkpoint: ${onDisk ? `best/ holds epoch ${onDisk.epoch}` : 'there is no best/'}, last/ recorded ` +
        `${state.best ? `epoch ${state.best.epoch}` : 'none'} (a save was cut short): going on from best/ as it is`);
      state.best = onDisk;
    }
  } else {
    rng = opts.rng ?? createRandom(recipe.seed);
    state = {
      format: 'gapcam-train-state', version: 1, recipe: recipe.name, epoch: 0, stepInEpoch: 0, globalStep: 0, stepsPerEpoch: spe,
      rng: rng.state(), best: null, epochAccum: freshAccum(), elapsedSeconds: 0, savedAt: '',
    };
  }
  const metrics = new MetricsLog(runDir, opts.resume ? state.globalStep : undefined);
  const record = async (row: MetricsRow) => {
    metrics.append(row);
    for (const sink of opts.sinks ?? []) await sink.row(row);
  };
  const restoreRandom = installRandom(rng);
  const sessionStart = performance.now();
  const elapsedBefore = state.elapsedSeconds;
  const elapsed = () => elapsedBefore + (performance.now() - sessionStart) / 1000;
  let sessionImages = 0, sessionTrainSeconds = 0, sessionSteps = 0;
  let status: TrainResult['status'] = 'completed';
  let lastEpoch: EpochRow | undefined = metrics.epochs().at(-1);

  // The last checkpoint known good (for the divergence message): the one resumed from, then each saved last/.
  let lastGood = opts.resume ? { epoch: state.epoch, step: state.globalStep } : undefined;
  const diverged = async (what: string, epoch: number, lr: number, batch?: number): Promise<TrainingDivergedError> => {
    const where = lastGood && resolveAtomicDir(lastDir)
      ? `the last good checkpoint is ${resolveAtomicDir(lastDir)} (step ${lastGood.step}, ${lastGood.epoch} epoch${lastGood.epoch === 1 ? '' : 's'} done)`
      : `no checkpoint was saved yet (it diverged in epoch ${epoch + 1})`;
    const msg = `training diverged: ${what} at step ${state.globalStep} (epoch ${epoch + 1}${batch ? `, batch ${batch}` : ''}) with learning rate ${lr.toPrecision(4)}; ` +
      `stopped without saving it, ${where} (try a lower --lr)`;
    await report(`stopped: ${msg}`).catch(() => undefined);
    return new TrainingDivergedError(msg, state.globalStep, lr);
  };
  const snapshot = (): TrainState => ({ ...state, rng: rng.state(), elapsedSeconds: elapsed(), savedAt: new Date().toISOString() });
  const saveLast = async () => {
    await saveCheckpoint(lastDir, cam, snapshot(), await optimizer.getState());
    lastGood = { epoch: state.epoch, step: state.globalStep };
  };
  /** Every weight finite, else the divergence error (checked before anything is saved). */
  const checkWeights = async (epoch: number, lr: number) => {
    const bad = await firstNonFiniteWeight(model);
    if (bad) throw await diverged(`weight ${bad} is not finite`, epoch, lr);
  };
  const report = (statusLine: string) => writeReport({
    runName: path.basename(runDir), runDir, rows: metrics.rows, recipe, status: statusLine, engine: opts.engine, notice: selectionNotice(recipe),
    final: finalNumbers(snapshot(), lastEpoch),
  });

  // Chain-shaped models (every shipped recipe, batch norm included) take the fused step: one engine kernel per
  // piece and only the activations each gradient reads; others take tf.variableGrads.
  const syncBn = parallel && training && model.layers.some((l) => l.getClassName() === 'BatchNormalization');
  const fusedWhyNot = process.env.GAPCAM_GENERIC_STEP ? 'GAPCAM_GENERIC_STEP is set'
    : syncBn ? 'synchronised BatchNorm across workers runs on the generic step' : fusedStepUnsupported(model);
  const fused = fusedWhyNot ? undefined : new FusedGradients(model);
  progress.log(fused ? 'training step: fused (src/perf)' : `training step: generic tf.variableGrads (${fusedWhyNot})`);
  // Every worker starts from the chief's weights; BatchNorm uses the global batch's statistics.
  parallel?.broadcastWeights(model);
  const unsyncBn = syncBn ? parallel!.syncBatchNorm(model) : undefined;
  try {
    // Parameters of the first epoch, so the optimizer state can be matched against them.
    let current = collectParams(model, recipe, headLayers, state.epoch);
    if (opts.resume?.optimizer) {
      const all = collectParams(model, { ...recipe, freeze: { layers: [], epochs: null } }, headLayers, state.epoch).params;
      try {
        optimizer.setState(opts.resume.optimizer, all);
      } catch (err) {
        throw new UserError(`--resume: cannot restore the optimizer: ${(err as Error).message}`);
      }
    }
    outer: while (state.epoch < recipe.epochs) {
      const epoch = state.epoch;
      current = collectParams(model, recipe, headLayers, epoch);
      if (current.params.length === 0) throw new UserError(`epoch ${epoch + 1}: every trainable layer is frozen (freeze.layers ${JSON.stringify(recipe.freeze.layers)})`);
      if (current.frozenLayers.length && (epoch === 0 || state.stepInEpoch === 0)) {
        progress.log(`epoch ${epoch + 1}: ${current.frozenLayers.length} layer(s) frozen (${current.frozenLayers.slice(0, 4).join(', ')}${current.frozenLayers.length > 4 ? ', …' : ''})`);
      }
      const { params } = current;
      // Checked after every step: the head (or the last trainable weight), which any NaN upstream reaches at once.
      const head = new Set(headLayers);
      const watched = params.filter((p) => head.has(p.key.slice(0, p.key.lastIndexOf('/')))).map((p) => p.variable);
      if (watched.length === 0) watched.push(params[params.length - 1].variable);
      const keyByName = new Map(params.map((p) => [p.variable.name, p.key]));
      const vars = params.map((p) => p.variable);
      progress.startEpoch(epoch + 1, recipe.epochs, spe, state.stepInEpoch);
      let tPrev = performance.now();
      const acc = state.epochAccum;
      if (state.stepInEpoch < spe) {
        for await (const batch of data.trainBatches(epoch, state.stepInEpoch)) {
          const lr = learningRateAt(state.globalStep, recipe.schedule, schedCtx);
          // This worker's share of the global batch's mean loss (1 in one process).
          const globalN = Math.min(recipe.batchSize, data.trainSize - state.stepInEpoch * recipe.batchSize);
          const weight = parallel ? batch.labels.length / globalN : 1;
          const n = parallel ? globalN : batch.labels.length;
          let correctT: tf.Tensor | undefined;
          const yT = tf.tensor1d(batch.labels, 'int32');
          let value: tf.Scalar;
          let grads: tf.NamedTensorMap;
          if (fused) {
            // Same loss and gradients as the generic path below, at a fraction of the memory (src/perf).
            const r = fused.gradients(batch.images, yT, { training, variables: vars });
            value = r.loss;
            grads = r.grads;
            correctT = r.correct;
          } else {
            ({ value, grads } = tf.variableGrads(() => {
              const out = model.apply(batch.images, { training }) as tf.Tensor2D;
              correctT = tf.keep(tf.sum(tf.cast(tf.equal(tf.argMax(out, -1), yT), 'float32')));
              const ce = crossEntropy(out, yT, numClasses, cam.meta.outputIsSoftmax);
              return parallel ? tf.mul(ce, weight) as tf.Scalar : ce;
            }, vars));
          }
          // Data parallel: the gradients summed over the workers in buckets (a few all-reduces per step, not one per
          // tensor), in the variables' order — the same on every worker (names can differ between processes); the
          // last bucket also carries the step's loss and correct count. The fused step's gradients are of this
          // worker's mean loss: the buckets weight them.
          const buckets = parallel?.gradientBuckets(fused ? weight : 1);
          if (buckets) grads = buckets.add(Object.fromEntries(vars.filter((v) => grads[v.name]).map((v) => [v.name, grads[v.name]])));
          batch.images.dispose();
          yT.dispose();
          let loss: number, correct: number;
          if (buckets) {
            const last = buckets.finish(tf.tidy(() => tf.stack([fused ? tf.mul(value, weight) : value, correctT!]) as tf.Tensor1D));
            grads = { ...grads, ...last.grads };
            [loss, correct] = await last.extra!.data();
            last.extra!.dispose();
          } else {
            loss = (await value.data())[0];
            correct = (await correctT!.data())[0];
          }
          value.dispose();
          correctT!.dispose();
          if (!Number.isFinite(loss)) {
            tf.dispose(grads);
            state.globalStep++;
            throw await diverged(`loss is ${loss}`, epoch, lr, state.stepInEpoch + 1);
          }
          const byKey = new Map<string, tf.Tensor>();
          for (const [name, g] of Object.entries(grads)) byKey.set(keyByName.get(name)!, g);
          optimizer.apply(params, byKey, lr);
          tf.dispose(grads);
          const headSum = tf.tidy(() => tf.addN(watched.map((v) => tf.sum(v))));
          const headOk = Number.isFinite((await headSum.data())[0]);
          headSum.dispose();
          if (!headOk) {
            // Confirm weight by weight (a sum of huge finite weights can overflow) and name the first bad one.
            state.globalStep++;
            await checkWeights(epoch, lr);
            state.globalStep--;
          }

          const now = performance.now();
          const dt = (now - tPrev) / 1000;
          tPrev = now;
          state.globalStep++;
          state.stepInEpoch++;
          acc.lossSum += loss * n;
          acc.correct += correct;
          acc.seen += n;
          acc.seconds += dt;
          sessionImages += n;
          sessionTrainSeconds += dt;
          sessionSteps++;
          const ips = n / Math.max(dt, 1e-9);
          await record({ kind: 'step', epoch: epoch + 1, step: state.globalStep, loss, acc: correct / n, lr, imagesPerSec: ips, seconds: elapsed() });
          progress.step({ epoch: epoch + 1, epochs: recipe.epochs, stepInEpoch: state.stepInEpoch, stepsPerEpoch: spe, globalStep: state.globalStep,
            loss, acc: acc.correct / acc.seen, lr, imagesPerSec: ips });
          if (opts.signal?.aborted) {
            status = 'interrupted';
            break outer;
          }
          if (opts.maxSteps !== undefined && sessionSteps >= opts.maxSteps) {
            status = 'max-steps';
            break outer;
          }
          if (state.stepInEpoch >= spe) break;
        }
      }
      // The epoch's training is done: validate, record, checkpoint.
      let val = data.valBatches ? await validate(model, data.valBatches(), numClasses, cam.meta.outputIsSoftmax, opts.signal) : undefined;
      if (parallel && data.valBatches) {
        const [lossSum, correct, seen] = await parallel.sum(val ? [val.loss * val.n, val.acc * val.n, val.n] : [0, 0, 0]);
        val = seen > 0 ? { loss: lossSum / seen, acc: correct / seen, n: seen } : undefined;
      }
      if (opts.signal?.aborted) {
        status = 'interrupted';
        state.stepInEpoch = spe; // trained, validation still to do
        break;
      }
      const trainLoss = acc.seen ? acc.lossSum / acc.seen : NaN;
      const metric = val ? val.acc : -trainLoss;
      const isBest = state.best === null || metric > state.best.metric;
      const lr = learningRateAt(Math.max(0, state.globalStep - 1), recipe.schedule, schedCtx);
      await checkWeights(epoch, lr);
      if (val && !Number.isFinite(val.loss)) throw await diverged(`validation loss is ${val.loss}`, epoch, lr);
      lastEpoch = {
        kind: 'epoch', epoch: epoch + 1, step: state.globalStep, loss: trainLoss, acc: acc.seen ? acc.correct / acc.seen : NaN,
        valLoss: val?.loss, valAcc: val?.acc, lr, imagesPerSec: acc.seen / Math.max(acc.seconds, 1e-9), seconds: elapsed(), best: isBest,
      };
      await record(lastEpoch);
      if (isBest) state.best = { metric, epoch: epoch + 1, valAcc: val?.acc };
      progress.endEpoch({ epoch: epoch + 1, epochs: recipe.epochs, loss: lastEpoch.loss, acc: lastEpoch.acc, valLoss: val?.loss, valAcc: val?.acc,
        seconds: acc.seconds, imagesPerSec: lastEpoch.imagesPerSec, best: isBest });
      state.epoch = epoch + 1;
      state.stepInEpoch = 0;
      state.epochAccum = freshAccum();
      if (isBest) await saveCheckpoint(bestDir, cam, snapshot());
      await saveLast();
      await report(state.epoch < recipe.epochs ? `training: ${state.epoch}/${recipe.epochs} epochs done` : `finished ${recipe.epochs} epochs`);
    }
    if (status !== 'completed') {
      await checkWeights(state.epoch, learningRateAt(Math.max(0, state.globalStep - 1), recipe.schedule, schedCtx));
      await saveLast();
      const why = status === 'interrupted' ? 'interrupted' : `stopped after --max-steps ${opts.maxSteps}`;
      progress.log(`${why} at step ${state.globalStep} (epoch ${state.epoch + 1}, batch ${state.stepInEpoch}/${spe}); checkpoint ${lastDir}`);
      await report(`${why} at step ${state.globalStep}; resume with --resume ${path.basename(runDir)}`);
    }
  } finally {
    unsyncBn?.();
    progress.stop();
    for (const sink of opts.sinks ?? []) sink.close?.();
    restoreRandom();
    optimizer.dispose();
  }
  return {
    status, runDir, lastDir, bestDir, epochsDone: state.epoch, globalStep: state.globalStep, best: readBestOnDisk(runDir)?.best ?? null, lastEpoch,
    seconds: elapsed(), imagesPerSec: sessionImages / Math.max(sessionTrainSeconds, 1e-9),
  };
}

function finalNumbers(state: TrainState, last: EpochRow | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = { 'epochs done': state.epoch, 'global step': state.globalStep };
  if (last) {
    out['last train loss'] = Number(last.loss.toFixed(4));
    out['last train accuracy'] = `${(last.acc * 100).toFixed(2)}%`;
    if (last.valAcc !== undefined) out['last validation top-1'] = `${(last.valAcc * 100).toFixed(2)}%`;
    out['images/s (last epoch)'] = Number(last.imagesPerSec.toFixed(1));
  }
  if (state.best?.valAcc !== undefined) out['best validation top-1'] = `${(state.best.valAcc * 100).toFixed(2)}% (epoch ${state.best.epoch})`;
  out['training seconds'] = Number(state.elapsedSeconds.toFixed(1));
  return out;
}
