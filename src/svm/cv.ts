// Choosing C by stratified k-fold cross-validation on the training rows, then refitting on all of them.
// The scaler is fitted inside each fold on that fold's training rows only, so no statistic of a held-out row leaks
// into its prediction. Along the grid (ascending C) each fold's problems start from the previous C's dual point.
import { makeRng, shuffleInPlace } from '../util/random.js';
import { applyScaler, fitScaler, type RawRows, type ScaleMode } from './scale.js';
import { argmaxRows, decisionValues, fitLinearSvm, trainOneVsRest, type LinearSvmModel, type LinearSvmOptions } from './linear-svm.js';
import { UserError } from '../errors.js';

export const DEFAULT_C_GRID = [0.0001, 0.001, 0.01, 0.1, 1, 10, 100];
export const DEFAULT_FOLDS = 5;

/** Fold id per row: rows of each class shuffled (seeded) and dealt round-robin, continuing across classes so
 *  fold sizes stay balanced. */
export function stratifiedFolds(labels: ArrayLike<number>, folds: number, seed: string | number = 1): Int32Array {
  const rng = makeRng(`folds:${seed}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const list = byClass.get(labels[i]) ?? [];
    list.push(i);
    byClass.set(labels[i], list);
  }
  const out = new Int32Array(labels.length);
  let next = 0;
  for (const k of [...byClass.keys()].sort((a, b) => a - b)) {
    const list = byClass.get(k)!;
    shuffleInPlace(list, rng);
    for (const i of list) out[i] = next++ % folds;
  }
  return out;
}

export interface CvPoint {
  C: number;
  accuracy: number;
  foldAccuracies: number[];
}

export interface CvResult {
  folds: number;
  grid: CvPoint[];
  bestC: number;
  /** Whether every fold's solver met the stopping rule for every C. */
  converged: boolean;
}

export interface CvOptions extends Omit<LinearSvmOptions, 'C'> {
  cGrid?: number[];
  folds?: number;
  scale: ScaleMode;
}

export function crossValidateC(raw: RawRows, labels: ArrayLike<number>, numClasses: number, options: CvOptions): CvResult {
  const grid = [...(options.cGrid ?? DEFAULT_C_GRID)].sort((a, b) => a - b);
  if (!grid.length || grid.some((c) => !(c > 0) || !Number.isFinite(c))) {
    throw new UserError(`svm: --c-grid must list positive numbers, found ${grid.join(',') || 'nothing'}`);
  }
  const n = raw.rows;
  const folds = Math.min(options.folds ?? DEFAULT_FOLDS, n);
  if (folds < 2) throw new UserError(`svm: cross-validation needs at least 2 folds and 2 training rows, found ${folds}`);
  const foldOf = stratifiedFolds(labels, folds, options.seed ?? 1);
  const correct = grid.map(() => new Array<number>(folds).fill(0));
  const counts = new Array<number>(folds).fill(0);
  let converged = true;
  for (let f = 0; f < folds; f++) {
    const trainIdx: number[] = [];
    const testIdx: number[] = [];
    for (let i = 0; i < n; i++) (foldOf[i] === f ? testIdx : trainIdx).push(i);
    counts[f] = testIdx.length;
    if (!testIdx.length || !trainIdx.length) continue;
    const scaler = fitScaler(raw, options.scale, trainIdx);
    const Xtr = applyScaler(scaler, raw, trainIdx);
    const Xte = applyScaler(scaler, raw, testIdx);
    const ytr = trainIdx.map((i) => labels[i]);
    let warm: Float64Array[] | undefined;
    grid.forEach((C, g) => {
      const fit = trainOneVsRest(Xtr, ytr, numClasses, { ...options, C }, warm);
      converged &&= fit.converged;
      warm = fit.alphas;
      const pred = argmaxRows(decisionValues(fit.weights, Xte, options.bias ?? 1), fit.weights.length);
      let hit = 0;
      testIdx.forEach((i, r) => { if (pred[r] === labels[i]) hit++; });
      correct[g][f] = hit;
    });
  }
  const points: CvPoint[] = grid.map((C, g) => ({
    C,
    accuracy: correct[g].reduce((a, b) => a + b, 0) / n,
    foldAccuracies: correct[g].map((h, f) => (counts[f] ? h / counts[f] : NaN)),
  }));
  // Best accuracy; ties go to the smallest C (the most regularised model).
  let best = points[0];
  for (const p of points) if (p.accuracy > best.accuracy + 1e-12) best = p;
  return { folds, grid: points, bestC: best.C, converged };
}

/** Cross-validates C over the grid (unless the grid has one value), then refits on all rows with the best C. */
export function selectCAndFit(
  raw: RawRows,
  labels: ArrayLike<number>,
  classNames: string[],
  options: CvOptions,
): { model: LinearSvmModel; cv?: CvResult } {
  const grid = options.cGrid ?? DEFAULT_C_GRID;
  if (grid.length === 1) return { model: fitLinearSvm(raw, labels, classNames, { ...options, C: grid[0] }) };
  const cv = crossValidateC(raw, labels, classNames.length, options);
  return { model: fitLinearSvm(raw, labels, classNames, { ...options, C: cv.bestC }), cv };
}
