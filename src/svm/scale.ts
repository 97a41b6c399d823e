// Feature scaling before the SVM. 'standard': subtract the training mean and divide by the training standard
// deviation (population std, as scikit-learn's StandardScaler; a constant feature keeps std 1). 'l2': divide each row
// by its Euclidean norm (a zero row stays zero). 'none': as is. The fitted parameters travel with the model.
import type { DenseMatrix } from './solver.js';

export const SCALE_MODES = ['standard', 'l2', 'none'] as const;
export type ScaleMode = (typeof SCALE_MODES)[number];

export interface Scaler {
  mode: ScaleMode;
  /** 'standard' only: per-feature mean and std of the training rows. */
  mean?: number[];
  std?: number[];
}

/** Float32 (or float64) rows, n × d, row-major. */
export interface RawRows {
  data: Float32Array | Float64Array;
  rows: number;
  cols: number;
}

export function fitScaler(X: RawRows, mode: ScaleMode, rowIndices?: ArrayLike<number>): Scaler {
  if (mode !== 'standard') return { mode };
  const { data, cols: d } = X;
  const idx = rowIndices ?? Array.from({ length: X.rows }, (_, i) => i);
  const n = idx.length;
  const mean = new Float64Array(d);
  const m2 = new Float64Array(d);
  for (let r = 0; r < n; r++) {
    const o = idx[r] * d;
    for (let j = 0; j < d; j++) mean[j] += data[o + j];
  }
  for (let j = 0; j < d; j++) mean[j] /= Math.max(n, 1);
  for (let r = 0; r < n; r++) {
    const o = idx[r] * d;
    for (let j = 0; j < d; j++) {
      const t = data[o + j] - mean[j];
      m2[j] += t * t;
    }
  }
  const std = Array.from(m2, (v) => {
    const s = Math.sqrt(v / Math.max(n, 1));
    return s > 1e-12 ? s : 1;
  });
  return { mode, mean: Array.from(mean), std };
}

/** Applies a fitted scaler to (a subset of) rows, returning a fresh float64 matrix. */
export function applyScaler(scaler: Scaler, X: RawRows, rowIndices?: ArrayLike<number>): DenseMatrix {
  const { data, cols: d } = X;
  const idx = rowIndices ?? null;
  const n = idx ? idx.length : X.rows;
  const out = new Float64Array(n * d);
  if (scaler.mode === 'standard' && (scaler.mean?.length !== d || scaler.std?.length !== d)) {
    throw new Error(`scaler fitted on ${scaler.mean?.length} features, applied to ${d}`);
  }
  for (let r = 0; r < n; r++) {
    const src = (idx ? idx[r] : r) * d;
    const dst = r * d;
    if (scaler.mode === 'standard') {
      const mean = scaler.mean!;
      const std = scaler.std!;
      for (let j = 0; j < d; j++) out[dst + j] = (data[src + j] - mean[j]) / std[j];
    } else if (scaler.mode === 'l2') {
      let s = 0;
      for (let j = 0; j < d; j++) s += data[src + j] * data[src + j];
      const inv = s > 0 ? 1 / Math.sqrt(s) : 1;
      for (let j = 0; j < d; j++) out[dst + j] = data[src + j] * inv;
    } else {
      for (let j = 0; j < d; j++) out[dst + j] = data[src + j];
    }
  }
  return { data: out, rows: n, cols: d };
}
