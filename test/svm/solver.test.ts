import { expect } from 'chai';
import seedrandom from 'seedrandom';
import { useEngine } from '../helpers.js';
import { solveBinarySvm, svmObjectives, decisionValue, type DenseMatrix } from '../../src/svm/solver.js';
import { fitLinearSvm, predictLinearSvm, trainOneVsRest } from '../../src/svm/linear-svm.js';
import { crossValidateC, stratifiedFolds } from '../../src/svm/cv.js';
import { applyScaler, fitScaler } from '../../src/svm/scale.js';
import { scorePredictions } from '../../src/svm/metrics.js';

// A small fixed, non-separable 2-D problem (two overlapping clouds).
const POINTS: [number, number, number][] = [
  [1.0, 2.0, 1], [2.0, 1.5, 1], [1.5, 0.2, 1], [3.0, 2.5, 1], [0.2, 1.1, 1], [2.5, -0.5, 1], [-0.5, -0.4, 1],
  [-1.0, -1.5, -1], [-2.0, -0.5, -1], [0.5, -1.0, -1], [-1.5, 0.5, -1], [1.2, 0.9, -1], [-0.3, -2.2, -1], [0.1, 0.3, -1],
];
const X: DenseMatrix = { data: Float64Array.from(POINTS.flatMap((p) => [p[0], p[1]])), rows: POINTS.length, cols: 2 };
const Y = Int8Array.from(POINTS.map((p) => p[2]));

/** Independent reference: generalised Newton on the primal ½‖w‖² + C Σ max(0, 1 − y wᵀx̃)², x̃ = [x, 1]. */
function primalNewton(C: number): number[] {
  let w = [0, 0, 0];
  for (let it = 0; it < 100; it++) {
    const g = [...w];
    const H = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    POINTS.forEach(([a, b, y]) => {
      const x = [a, b, 1];
      const m = 1 - y * (w[0] * a + w[1] * b + w[2]);
      if (m > 0) {
        for (let j = 0; j < 3; j++) {
          g[j] -= 2 * C * m * y * x[j];
          for (let k = 0; k < 3; k++) H[j][k] += 2 * C * x[j] * x[k];
        }
      }
    });
    const step = solve3(H, g);
    w = w.map((v, j) => v - step[j]);
    if (Math.hypot(...step) < 1e-13) break;
  }
  return w;
}

function solve3(A: number[][], b: number[]): number[] {
  const M = A.map((r, i) => [...r, b[i]]);
  for (let c = 0; c < 3; c++) {
    let p = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = 0; r < 3; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k < 4; k++) M[r][k] -= f * M[c][k];
    }
  }
  return [0, 1, 2].map((i) => M[i][3] / M[i][i]);
}

function blobs(n: number, d: number, K: number, seed: string, spread = 0.3, noiseSeed = seed): { data: Float32Array; labels: Int32Array } {
  const crng = seedrandom(seed);
  const centers = Array.from({ length: K }, () => Array.from({ length: d }, () => (crng() - 0.5) * 10));
  const rng = seedrandom(`noise:${noiseSeed}`);
  const data = new Float32Array(n * d);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i % K;
    labels[i] = k;
    for (let j = 0; j < d; j++) data[i * d + j] = centers[k][j] + (rng() - 0.5) * 2 * spread;
  }
  return { data, labels };
}

describe('svm: dual coordinate descent (LIBLINEAR -s 1)', () => {
  before(useEngine);

  for (const C of [0.05, 1, 20]) {
    it(`satisfies the dual KKT conditions and matches the primal optimum (C = ${C})`, () => {
      const r = solveBinarySvm(X, Y, { C, eps: 1e-10, maxIter: 100000, seed: 3 });
      expect(r.converged).to.equal(true);
      const diag = 1 / (2 * C);
      // w = Σ α_i y_i x̃_i
      const w = [0, 0, 0];
      POINTS.forEach(([a, b, y], i) => {
        w[0] += r.alpha[i] * y * a;
        w[1] += r.alpha[i] * y * b;
        w[2] += r.alpha[i] * y;
      });
      for (let j = 0; j < 3; j++) expect(r.w[j]).to.be.closeTo(w[j], 1e-9);
      let support = 0;
      for (let i = 0; i < X.rows; i++) {
        const G = Y[i] * decisionValue(r.w, X, i, 1) - 1 + r.alpha[i] * diag;
        expect(r.alpha[i]).to.be.at.least(0);
        if (r.alpha[i] > 0) {
          support++;
          expect(Math.abs(G), `gradient of free variable ${i}`).to.be.below(1e-8);
        } else {
          expect(G, `gradient at bound ${i}`).to.be.at.least(-1e-8);
        }
        // Primal–dual link of the squared hinge: α_i = 2C·max(0, 1 − y_i wᵀx̃_i).
        const m = Math.max(0, 1 - Y[i] * decisionValue(r.w, X, i, 1));
        expect(r.alpha[i]).to.be.closeTo(2 * C * m, 1e-8);
      }
      expect(support).to.be.greaterThan(0);
      const { primal, dual } = svmObjectives(X, Y, r, C);
      expect(primal - dual).to.be.at.least(-1e-9);
      expect(primal - dual).to.be.below(1e-8 * Math.max(1, primal));
      const ref = primalNewton(C);
      for (let j = 0; j < 3; j++) expect(r.w[j]).to.be.closeTo(ref[j], 1e-7);
    });
  }

  it('satisfies the KKT conditions of the hinge-loss dual (LIBLINEAR -s 3, 0 ≤ α ≤ C)', () => {
    const C = 0.5;
    const r = solveBinarySvm(X, Y, { C, loss: 'hinge', eps: 1e-10, maxIter: 100000 });
    for (let i = 0; i < X.rows; i++) {
      const G = Y[i] * decisionValue(r.w, X, i, 1) - 1;
      expect(r.alpha[i]).to.be.within(0, C);
      if (r.alpha[i] === 0) expect(G).to.be.at.least(-1e-8);
      else if (r.alpha[i] === C) expect(G).to.be.at.most(1e-8);
      else expect(Math.abs(G)).to.be.below(1e-8);
    }
    const { primal, dual } = svmObjectives(X, Y, r, C, 'hinge');
    expect(primal - dual).to.be.within(-1e-9, 1e-7);
  });

  it('reaches the same optimum with and without shrinking, and from a warm start', () => {
    const a = solveBinarySvm(X, Y, { C: 2, eps: 1e-10, maxIter: 100000, shrinking: true });
    const b = solveBinarySvm(X, Y, { C: 2, eps: 1e-10, maxIter: 100000, shrinking: false, seed: 'other' });
    const warm = solveBinarySvm(X, Y, { C: 2, eps: 1e-10, maxIter: 100000, initAlpha: solveBinarySvm(X, Y, { C: 0.5, eps: 1e-3 }).alpha });
    for (let j = 0; j < 3; j++) {
      expect(b.w[j]).to.be.closeTo(a.w[j], 1e-8);
      expect(warm.w[j]).to.be.closeTo(a.w[j], 1e-8);
    }
  });

  it('stops at LIBLINEAR\'s default eps 0.1 with a near-optimal solution', () => {
    const r = solveBinarySvm(X, Y, { C: 1 });
    const tight = solveBinarySvm(X, Y, { C: 1, eps: 1e-10, maxIter: 100000 });
    const a = svmObjectives(X, Y, r, 1).primal;
    const b = svmObjectives(X, Y, tight, 1).primal;
    expect(r.converged).to.equal(true);
    expect(a).to.be.at.least(b - 1e-9);
    expect((a - b) / b).to.be.below(0.05);
  });

  it('classifies linearly separable multi-class data with 100 % accuracy (train and held-out)', () => {
    const train = blobs(90, 6, 3, 'sep-train');
    const test = blobs(60, 6, 3, 'sep-train', 0.3, 'held-out'); // same centres, fresh points
    const classNames = ['a', 'b', 'c'];
    for (const scale of ['standard', 'l2', 'none'] as const) {
      const model = fitLinearSvm({ data: train.data, rows: 90, cols: 6 }, train.labels, classNames, { C: 1, scale });
      const trainPred = predictLinearSvm(model, { data: train.data, rows: 90, cols: 6 });
      expect(scorePredictions(train.labels, trainPred.predicted, 3).accuracy, scale).to.equal(1);
      const testPred = predictLinearSvm(model, { data: test.data, rows: 60, cols: 6 });
      expect(scorePredictions(test.labels, testPred.predicted, 3).accuracy, scale).to.equal(1);
      expect(model.weights).to.have.length(3);
      expect(model.weights[0]).to.have.length(7);
    }
  });

  it('separates a two-class problem exactly, with the second weight row the negated first', () => {
    // Separable with margin: class by the sign of x0 + x1 - 0.5, points at least 0.3 away from the plane.
    const rng = seedrandom('two');
    const rows: number[] = [];
    const labels: number[] = [];
    while (labels.length < 80) {
      const a = rng() * 4 - 2;
      const b = rng() * 4 - 2;
      const s = (a + b - 0.5) / Math.SQRT2;
      if (Math.abs(s) < 0.3) continue;
      rows.push(a, b);
      labels.push(s > 0 ? 0 : 1);
    }
    const raw = { data: Float32Array.from(rows), rows: 80, cols: 2 };
    const model = fitLinearSvm(raw, labels, ['pos', 'neg'], { C: 100, scale: 'none', eps: 1e-6 });
    expect(model.weights[1]).to.deep.equal(model.weights[0].map((v) => -v));
    const pred = predictLinearSvm(model, raw);
    expect(scorePredictions(labels, pred.predicted, 2).accuracy).to.equal(1);
  });

  it('one-vs-rest trains one problem per class whose weights satisfy that problem\'s KKT conditions', () => {
    const { data, labels } = blobs(45, 4, 3, 'ovr', 3);
    const scaler = fitScaler({ data, rows: 45, cols: 4 }, 'standard');
    const Xs = applyScaler(scaler, { data, rows: 45, cols: 4 });
    const C = 0.3;
    const fit = trainOneVsRest(Xs, labels, 3, { C, eps: 1e-9, maxIter: 100000 });
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 45; i++) {
        const y = labels[i] === c ? 1 : -1;
        const m = Math.max(0, 1 - y * decisionValue(fit.weights[c], Xs, i, 1));
        expect(fit.alphas[c][i]).to.be.closeTo(2 * C * m, 1e-7);
      }
    }
  });

  it('standardises with the training mean and population std (a constant column keeps std 1)', () => {
    const raw = { data: Float32Array.from([1, 5, 3, 5, 5, 5]), rows: 3, cols: 2 };
    const s = fitScaler(raw, 'standard');
    expect(s.mean).to.deep.equal([3, 5]);
    expect(s.std![0]).to.be.closeTo(Math.sqrt(8 / 3), 1e-12);
    expect(s.std![1]).to.equal(1);
    const l2 = applyScaler({ mode: 'l2' }, { data: Float32Array.from([3, 4, 0, 0]), rows: 2, cols: 2 });
    [0.6, 0.8, 0, 0].forEach((v, i) => expect(l2.data[i]).to.be.closeTo(v, 1e-15));
  });

  it('deals stratified folds evenly and cross-validation picks the best C of the grid', () => {
    const labels = Int32Array.from({ length: 50 }, (_, i) => (i < 20 ? 0 : 1));
    const folds = stratifiedFolds(labels, 5, 7);
    for (let f = 0; f < 5; f++) {
      const inFold = Array.from(labels).filter((_, i) => folds[i] === f);
      expect(inFold.filter((l) => l === 0)).to.have.length(4);
      expect(inFold.filter((l) => l === 1)).to.have.length(6);
    }
    const { data, labels: y } = blobs(60, 5, 3, 'cv', 6);
    const cv = crossValidateC({ data, rows: 60, cols: 5 }, y, 3, { cGrid: [10, 0.001, 1], folds: 4, scale: 'standard' });
    expect(cv.grid.map((p) => p.C)).to.deep.equal([0.001, 1, 10]);
    const best = Math.max(...cv.grid.map((p) => p.accuracy));
    expect(cv.grid.find((p) => p.C === cv.bestC)!.accuracy).to.equal(best);
    expect(cv.bestC).to.equal(cv.grid.find((p) => p.accuracy === best)!.C);
    for (const p of cv.grid) expect(p.foldAccuracies).to.have.length(4);
  });
});
