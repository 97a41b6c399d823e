// Multi-class linear SVM, one-vs-rest, as LIBLINEAR does for -s 1 / -s 3: one binary problem per class (that class
// +1, every other −1), prediction by the largest decision value. With two classes LIBLINEAR solves a single problem;
// here too — the two one-vs-rest problems are then mirror images, so the second weight row is exactly the negated
// first and the saved model still has one row per class.
import { rowSquaredNorms, solveBinarySvm, LIBLINEAR_DEFAULT_EPS, LIBLINEAR_MAX_ITER, type DenseMatrix, type DualCdOptions, type SvmLoss } from './solver.js';
import { applyScaler, fitScaler, type RawRows, type ScaleMode, type Scaler } from './scale.js';
import { UserError } from '../errors.js';

/** The solver's options that apply to every one-vs-rest problem (warm starts and norms are per problem). */
export type LinearSvmOptions = Omit<DualCdOptions, 'initAlpha' | 'sqNorms'>;

export interface LinearSvmModel {
  format: 'gapcam-linear-svm';
  version: 1;
  solver: string;
  multiclass: 'one-vs-rest';
  loss: SvmLoss;
  C: number;
  bias: number;
  eps: number;
  dimension: number;
  classNames: string[];
  scale: Scaler;
  /** One row per class: `dimension` weights, then the bias weight when bias > 0. */
  weights: number[][];
  iterations: number[];
  converged: boolean;
}

export interface OvrFit {
  weights: Float64Array[];
  alphas: Float64Array[];
  iterations: number[];
  converged: boolean;
}

export function solverName(loss: SvmLoss): string {
  return loss === 'squared-hinge'
    ? 'L2R_L2LOSS_SVC_DUAL (LIBLINEAR -s 1): dual coordinate descent, Hsieh et al. 2008'
    : 'L2R_L1LOSS_SVC_DUAL (LIBLINEAR -s 3): dual coordinate descent, Hsieh et al. 2008';
}

/** Trains one binary problem per class on already scaled rows. `warm` (the alphas of a previous fit on the same
 *  rows) starts each problem from that dual point. */
export function trainOneVsRest(X: DenseMatrix, labels: ArrayLike<number>, numClasses: number, options: LinearSvmOptions, warm?: Float64Array[]): OvrFit {
  const n = X.rows;
  const sqNorms = rowSquaredNorms(X);
  const common = {
    C: options.C,
    loss: options.loss,
    eps: options.eps,
    maxIter: options.maxIter,
    shrinking: options.shrinking,
    bias: options.bias ?? 1,
    seed: options.seed,
    sqNorms,
  };
  const fit: OvrFit = { weights: [], alphas: [], iterations: [], converged: true };
  const problems = numClasses === 2 ? 1 : numClasses;
  for (let c = 0; c < problems; c++) {
    const y = new Int8Array(n);
    for (let i = 0; i < n; i++) y[i] = labels[i] === c ? 1 : -1;
    const r = solveBinarySvm(X, y, { ...common, initAlpha: warm?.[c] });
    fit.weights.push(r.w);
    fit.alphas.push(r.alpha);
    fit.iterations.push(r.iterations);
    fit.converged &&= r.converged;
  }
  if (numClasses === 2) fit.weights.push(fit.weights[0].map((v) => -v));
  return fit;
}

/** n × K decision values of scaled rows. */
export function decisionValues(weights: ArrayLike<number>[], X: DenseMatrix, bias: number): Float64Array {
  const { data, rows: n, cols: d } = X;
  const K = weights.length;
  const out = new Float64Array(n * K);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let c = 0; c < K; c++) {
      const w = weights[c];
      let s = 0;
      for (let j = 0; j < d; j++) s += w[j] * data[o + j];
      if (bias > 0) s += w[d] * bias;
      out[i * K + c] = s;
    }
  }
  return out;
}

/** Index of the largest decision value per row (first one on ties). */
export function argmaxRows(values: Float64Array, K: number): Int32Array {
  const n = values.length / K;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < K; c++) if (values[i * K + c] > values[i * K + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Fits scaler + one-vs-rest SVM on raw rows with class ids in [0, classNames.length). */
export function fitLinearSvm(
  raw: RawRows,
  labels: ArrayLike<number>,
  classNames: string[],
  options: LinearSvmOptions & { scale: ScaleMode },
): LinearSvmModel {
  const K = classNames.length;
  if (K < 2) throw new UserError(`svm: need at least 2 classes, found ${K}`);
  const present = new Set(Array.from(labels));
  if (present.size < 2) throw new UserError(`svm: the training features hold only ${present.size} class(es); need at least 2`);
  const scaler = fitScaler(raw, options.scale);
  const X = applyScaler(scaler, raw);
  const fit = trainOneVsRest(X, labels, K, options);
  const loss = options.loss ?? 'squared-hinge';
  return {
    format: 'gapcam-linear-svm',
    version: 1,
    solver: solverName(loss),
    multiclass: 'one-vs-rest',
    loss,
    C: options.C,
    bias: options.bias ?? 1,
    eps: options.eps ?? LIBLINEAR_DEFAULT_EPS,
    dimension: raw.cols,
    classNames,
    scale: scaler,
    weights: fit.weights.map((w) => Array.from(w)),
    iterations: fit.iterations,
    converged: fit.converged,
  };
}

export interface SvmPrediction {
  predicted: Int32Array;
  /** n × K decision values. */
  scores: Float64Array;
}

export function predictLinearSvm(model: LinearSvmModel, raw: RawRows): SvmPrediction {
  if (raw.cols !== model.dimension) {
    throw new UserError(`svm: the model expects ${model.dimension}-dimensional features, found ${raw.cols}`);
  }
  const X = applyScaler(model.scale, raw);
  const scores = decisionValues(model.weights, X, model.bias);
  return { predicted: argmaxRows(scores, model.weights.length), scores };
}

export { LIBLINEAR_MAX_ITER };
