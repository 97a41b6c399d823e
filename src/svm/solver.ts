// The binary L2-regularised linear SVM, solved in the dual by coordinate descent (Hsieh, Chang, Lin, Keerthi,
// Sundararajan, ICML 2008, "A Dual Coordinate Descent Method for Large-scale Linear SVM", Algorithm 1 with the
// shrinking of its section 3.2). This follows LIBLINEAR's `solve_l2r_l1l2_svc` step for step — LIBLINEAR's default
// solver `-s 1` (L2R_L2LOSS_SVC_DUAL) and `-s 3` (L2R_L1LOSS_SVC_DUAL) — on dense rows:
//
//   primal  min_w  ½‖w‖² + C Σ_i ξ(w; x_i, y_i),   ξ = max(0, 1 − y_i wᵀx_i)²   (squared hinge, -s 1)
//                                                  ξ = max(0, 1 − y_i wᵀx_i)    (hinge, -s 3)
//   dual    min_α  ½ αᵀ Q̄ α − eᵀα,  0 ≤ α_i ≤ U,  Q̄ = Q + D,  Q_ij = y_i y_j x_iᵀx_j,
//           squared hinge: D_ii = 1/(2C), U = ∞;   hinge: D_ii = 0, U = C;   w = Σ_i y_i α_i x_i.
//
// The bias is LIBLINEAR's `-B b`: every row gets one more feature of constant value b (so the bias is regularised
// like the other weights, exactly as LIBLINEAR does); b ≤ 0 means no bias term.
// Stopping rule as LIBLINEAR: max projected gradient − min projected gradient ≤ eps over one pass (default 0.1),
// re-checked on the full set when shrinking had removed variables.
import seedrandom from 'seedrandom';

/** Row-major dense matrix of float64 values. */
export interface DenseMatrix {
  data: Float64Array;
  rows: number;
  cols: number;
}

export type SvmLoss = 'squared-hinge' | 'hinge';

export interface DualCdOptions {
  C: number;
  /** 'squared-hinge' (LIBLINEAR -s 1, the default) or 'hinge' (-s 3). */
  loss?: SvmLoss;
  /** Stopping tolerance on the projected-gradient spread (LIBLINEAR's -e; default 0.1). */
  eps?: number;
  /** Outer iterations at most (LIBLINEAR: 1000). */
  maxIter?: number;
  /** Shrinking of the active set (default true, as LIBLINEAR). */
  shrinking?: boolean;
  /** Value of the appended constant feature (LIBLINEAR -B); ≤ 0 for no bias. Default 1. */
  bias?: number;
  /** Seed of the random coordinate order. */
  seed?: string | number;
  /** Starting dual point (warm start; must be feasible); copied, not modified. */
  initAlpha?: Float64Array;
  /** ‖x_i‖² (without the bias feature), when the caller already has them (one-vs-rest shares them). */
  sqNorms?: Float64Array;
}

export interface DualCdResult {
  /** Weights, length cols (+1 with a bias: the last entry multiplies the constant feature `bias`). */
  w: Float64Array;
  alpha: Float64Array;
  iterations: number;
  /** False when maxIter was reached before the stopping rule held. */
  converged: boolean;
}

export const LIBLINEAR_DEFAULT_EPS = 0.1;
export const LIBLINEAR_MAX_ITER = 1000;

export function rowSquaredNorms(X: DenseMatrix): Float64Array {
  const { data, rows, cols } = X;
  const out = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    const o = i * cols;
    for (let j = 0; j < cols; j++) s += data[o + j] * data[o + j];
    out[i] = s;
  }
  return out;
}

/** Solves one binary problem; `y[i]` is +1 or −1. */
export function solveBinarySvm(X: DenseMatrix, y: Int8Array, options: DualCdOptions): DualCdResult {
  const { data, rows: l, cols: d } = X;
  if (y.length !== l) throw new Error(`solveBinarySvm: ${l} rows but ${y.length} labels`);
  const C = options.C;
  if (!(C > 0) || !Number.isFinite(C)) throw new Error(`solveBinarySvm: C must be a positive number, got ${C}`);
  const loss = options.loss ?? 'squared-hinge';
  const eps = options.eps ?? LIBLINEAR_DEFAULT_EPS;
  const maxIter = options.maxIter ?? LIBLINEAR_MAX_ITER;
  const shrinking = options.shrinking ?? true;
  const bias = options.bias ?? 1;
  const hasBias = bias > 0;
  const wSize = d + (hasBias ? 1 : 0);
  const diag = loss === 'squared-hinge' ? 0.5 / C : 0;
  const U = loss === 'squared-hinge' ? Infinity : C;
  const rng = seedrandom(String(options.seed ?? 1));

  const w = new Float64Array(wSize);
  const alpha = new Float64Array(l);
  const QD = new Float64Array(l);
  const index = new Int32Array(l);
  const norms = options.sqNorms ?? rowSquaredNorms(X);
  const b2 = hasBias ? bias * bias : 0;
  for (let i = 0; i < l; i++) {
    const a = options.initAlpha ? Math.min(Math.max(options.initAlpha[i], 0), U) : 0;
    alpha[i] = a;
    QD[i] = diag + norms[i] + b2;
    index[i] = i;
    if (a !== 0) {
      const s = y[i] * a;
      const o = i * d;
      for (let j = 0; j < d; j++) w[j] += s * data[o + j];
      if (hasBias) w[d] += s * bias;
    }
  }

  let activeSize = l;
  let PGmaxOld = Infinity;
  let PGminOld = -Infinity;
  let iter = 0;
  let converged = false;
  while (iter < maxIter) {
    let PGmaxNew = -Infinity;
    let PGminNew = Infinity;
    for (let i = 0; i < activeSize; i++) {
      const j = i + Math.floor(rng() * (activeSize - i));
      const t = index[i];
      index[i] = index[j];
      index[j] = t;
    }
    for (let s = 0; s < activeSize; s++) {
      const i = index[s];
      const yi = y[i];
      const o = i * d;
      let dot = 0;
      for (let j = 0; j < d; j++) dot += w[j] * data[o + j];
      if (hasBias) dot += w[d] * bias;
      const G = yi * dot - 1 + alpha[i] * diag;
      let PG = 0;
      if (alpha[i] === 0) {
        if (shrinking && G > PGmaxOld) {
          activeSize--;
          index[s] = index[activeSize];
          index[activeSize] = i;
          s--;
          continue;
        } else if (G < 0) PG = G;
      } else if (alpha[i] === U) {
        if (shrinking && G < PGminOld) {
          activeSize--;
          index[s] = index[activeSize];
          index[activeSize] = i;
          s--;
          continue;
        } else if (G > 0) PG = G;
      } else PG = G;
      if (PG > PGmaxNew) PGmaxNew = PG;
      if (PG < PGminNew) PGminNew = PG;
      if (Math.abs(PG) > 1e-12) {
        const old = alpha[i];
        alpha[i] = Math.min(Math.max(old - G / QD[i], 0), U);
        const step = (alpha[i] - old) * yi;
        for (let j = 0; j < d; j++) w[j] += step * data[o + j];
        if (hasBias) w[d] += step * bias;
      }
    }
    iter++;
    if (PGmaxNew - PGminNew <= eps) {
      if (activeSize === l) {
        converged = true;
        break;
      }
      activeSize = l;
      PGmaxOld = Infinity;
      PGminOld = -Infinity;
      continue;
    }
    PGmaxOld = PGmaxNew;
    PGminOld = PGminNew;
    if (PGmaxOld <= 0) PGmaxOld = Infinity;
    if (PGminOld >= 0) PGminOld = -Infinity;
  }
  return { w, alpha, iterations: iter, converged };
}

/** Decision value wᵀx (+ w_bias·bias) for row i of X. */
export function decisionValue(w: Float64Array, X: DenseMatrix, i: number, bias: number): number {
  const { data, cols: d } = X;
  const o = i * d;
  let s = 0;
  for (let j = 0; j < d; j++) s += w[j] * data[o + j];
  if (bias > 0) s += w[d] * bias;
  return s;
}

/** Primal objective ½‖w‖² + C Σ loss, and dual objective (the negative of the minimised dual, so at the optimum
 *  both are equal and dual ≤ primal always). For tests and diagnostics. */
export function svmObjectives(
  X: DenseMatrix,
  y: Int8Array,
  result: { w: Float64Array; alpha: Float64Array },
  C: number,
  loss: SvmLoss = 'squared-hinge',
  bias = 1,
): { primal: number; dual: number } {
  const { w, alpha } = result;
  let ww = 0;
  for (let j = 0; j < w.length; j++) ww += w[j] * w[j];
  // w(α) recomputed from α, so the dual objective does not rely on the solver's running w.
  const wa = new Float64Array(w.length);
  const d = X.cols;
  for (let i = 0; i < X.rows; i++) {
    const s = y[i] * alpha[i];
    if (s === 0) continue;
    for (let j = 0; j < d; j++) wa[j] += s * X.data[i * d + j];
    if (bias > 0) wa[d] += s * bias;
  }
  let waw = 0;
  for (let j = 0; j < wa.length; j++) waw += wa[j] * wa[j];
  let lossSum = 0;
  let alphaSum = 0;
  let alphaSq = 0;
  for (let i = 0; i < X.rows; i++) {
    const m = Math.max(0, 1 - y[i] * decisionValue(w, X, i, bias));
    lossSum += loss === 'squared-hinge' ? m * m : m;
    alphaSum += alpha[i];
    alphaSq += alpha[i] * alpha[i];
  }
  const primal = 0.5 * ww + C * lossSum;
  const dual = alphaSum - 0.5 * waw - (loss === 'squared-hinge' ? alphaSq / (4 * C) : 0);
  return { primal, dual };
}
