import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, expectNoTensorLeak } from '../helpers.js';
import { createCamMethod, camMethods, METHOD_NAMES } from '../../src/cam/registry.js';
import { classActivationMaps, normalizeMaps } from '../../src/cam/class-maps.js';
import { tinyGapDense, tinyConvGap, tinyDeepHead, seededImages, layerOutput } from './tiny-models.js';

type Grid = number[][][]; // [y][x][k]

/** Plain-JS head of tinyDeepHead after 'feat': logits_c(A) (pre-softmax), in float64. */
function jsHead(model: tf.LayersModel) {
  const [wm, bm] = model.getLayer('mix').getWeights().map((t) => t.arraySync()) as [number[][][][], number[]];
  const [wf, bf] = model.getLayer('fc').getWeights().map((t) => t.arraySync()) as [number[][], number[]];
  return (a: Grid, c: number): number => {
    const h = a.length, w = a[0].length, m = bm.length;
    const pooled = new Array(m).fill(0);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let j = 0; j < m; j++) {
      let z = bm[j];
      for (let k = 0; k < a[y][x].length; k++) z += wm[0][0][k][j] * a[y][x][k];
      pooled[j] += Math.tanh(z) / (h * w);
    }
    let s = bf[c];
    for (let j = 0; j < m; j++) s += wf[j][c] * pooled[j];
    return s;
  };
}

/** Central finite differences of f with respect to every A[y][x][k]. */
function finiteGrad(f: (a: Grid) => number, a: Grid, eps = 1e-4): Grid {
  return a.map((row, y) => row.map((cell, x) => cell.map((_, k) => {
    const plus = a.map((r) => r.map((c) => c.slice()));
    const minus = a.map((r) => r.map((c) => c.slice()));
    plus[y][x][k] += eps;
    minus[y][x][k] -= eps;
    return (f(plus) - f(minus)) / (2 * eps);
  })));
}

function relu(v: number): number {
  return v > 0 ? v : 0;
}

/** map(y, x) = ReLU(Σ_k W(y, x, k) A(y, x, k)). */
function weightedMap(a: Grid, weight: (y: number, x: number, k: number) => number, applyRelu = true): number[][] {
  return a.map((row, y) => row.map((cell, x) => {
    const s = cell.reduce((acc, v, k) => acc + weight(y, x, k) * v, 0);
    return applyRelu ? relu(s) : s;
  }));
}

function expectMapClose(actual: number[][], expected: number[][], tol: number, what: string): void {
  const scale = Math.max(1e-6, ...expected.flat().map(Math.abs));
  actual.forEach((row, y) => row.forEach((v, x) => {
    expect(Math.abs(v - expected[y][x]) / scale, `${what} at (${y}, ${x}): ${v} vs ${expected[y][x]}`).to.be.below(tol);
  }));
}

function channel(maps: tf.Tensor4D, i: number, j: number): number[][] {
  return (maps.arraySync()[i] as number[][][]).map((r) => r.map((c) => c[j]));
}

function sumOver(a: Grid, f: (y: number, x: number, k: number) => number, k: number): number {
  let s = 0;
  a.forEach((row, y) => row.forEach((_, x) => { s += f(y, x, k); }));
  return s;
}

describe('cam/methods', () => {
  before(useEngine);

  it('registry: every entry is named by its key', () => {
    for (const name of METHOD_NAMES) expect(camMethods[name].NAME).to.equal(name);
    expect(() => createCamMethod('nope', { model: tinyDeepHead() })).to.throw(/--method: expected one of cam, gradcam/);
  });

  it('chooses the last layer with a 4-D output automatically, or --layer', () => {
    const model = tinyDeepHead();
    expect(createCamMethod('gradcam', { model }).layer).to.equal('mix');
    expect(createCamMethod('gradcam', { model }).layerChoice).to.equal('auto');
    const m = createCamMethod('gradcam', { model }, { layer: 'conv1' });
    expect([m.layer, m.layerChoice]).to.deep.equal(['conv1', 'flag']);
    expect(() => createCamMethod('gradcam', { model }, { layer: 'zzz' })).to.throw(/--layer: 'zzz' is not a layer/);
    expect(() => createCamMethod('gradcam', { model }, { layer: 'gap' })).to.throw(/expected a 4-D/);
    expect(createCamMethod('cam', { model }).layer, 'mix → GAP → Dense is CAM-ready').to.equal('mix');
    const flat = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [6, 6, 3], filters: 2, kernelSize: 3, name: 'c' }),
      tf.layers.flatten({}), tf.layers.dense({ units: 3 })] });
    expect(() => createCamMethod('cam', { model: flat })).to.throw(/not CAM-ready/);
    expect(createCamMethod('gradcam', { model: flat }).layer, 'Sequential models split too').to.equal('c');
    const xs = tf.randomUniform([1, 6, 6, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const r = createCamMethod('gradcam', { model: flat }).compute(xs, [[1]]);
    const direct = (flat.predict(xs) as tf.Tensor2D).arraySync().flat();
    r.logits.arraySync().flat().forEach((v, i) => expect(v).to.be.closeTo(direct[i], 1e-5));
    expect(r.maps.shape).to.deep.equal([1, 4, 4, 1]);
    tf.dispose([xs, r.logits, r.maps]);
  });

  describe('each method against an independent plain-JS computation (finite-difference gradients)', () => {
    const model = tinyDeepHead();
    let x: tf.Tensor4D;
    let A: Grid[];
    let G: Grid[][]; // [image][class] gradient grid
    const ids = [[2, 0], [1, 2]];
    before(() => {
      x = seededImages(2, 8, 11);
      A = layerOutput(model, 'feat', x);
      const head = jsHead(model);
      G = A.map((a, i) => ids[i].map((c) => finiteGrad((t) => head(t, c), a)));
    });
    after(() => x.dispose());

    const run = (name: string) => {
      const method = createCamMethod(name, { model }, { layer: 'feat' });
      const res = method.compute(x, ids);
      expect(res.layer).to.equal('feat');
      expect(res.maps.shape).to.deep.equal([2, 8, 8, 2]);
      const out = ids.map((row, i) => row.map((_, j) => channel(res.maps, i, j)));
      tf.dispose([res.logits, res.maps]);
      return out;
    };

    it('logits are the pre-softmax scores of the softmax model', () => {
      const method = createCamMethod('gradcam', { model }, { layer: 'feat' });
      const res = method.compute(x, ids);
      const head = jsHead(model);
      const l = res.logits.arraySync();
      for (let i = 0; i < 2; i++) for (let c = 0; c < 3; c++) expect(l[i][c]).to.be.closeTo(head(A[i], c), 1e-4);
      tf.dispose([res.logits, res.maps]);
    });

    it('gradcam: w_k = mean_ij dS/dA', () => {
      const maps = run('gradcam');
      ids.forEach((row, i) => row.forEach((_, j) => {
        const g = G[i][j];
        const hw = g.length * g[0].length;
        const w = A[i][0][0].map((_, k) => sumOver(g, (y, xx, kk) => g[y][xx][kk], k) / hw);
        expectMapClose(maps[i][j], weightedMap(A[i], (_y, _x, k) => w[k]), 1e-3, `gradcam ${i},${j}`);
      }));
    });

    it('gradcam++: alpha = g²/(2g² + ΣA·g³), w = Σ alpha·relu(g)', () => {
      const maps = run('gradcam++');
      ids.forEach((row, i) => row.forEach((_, j) => {
        const g = G[i][j];
        const a = A[i];
        const w = a[0][0].map((_, k) => {
          const sumA = sumOver(a, (y, xx, kk) => a[y][xx][kk], k);
          return sumOver(g, (y, xx, kk) => {
            const v = g[y][xx][kk];
            if (v === 0) return 0;
            const alpha = (v * v) / (2 * v * v + sumA * v * v * v);
            return alpha * relu(v);
          }, k);
        });
        expectMapClose(maps[i][j], weightedMap(a, (_y, _x, k) => w[k]), 2e-3, `gradcam++ ${i},${j}`);
      }));
    });

    it('xgradcam: w_k = Σ (A/ΣA)·g', () => {
      const maps = run('xgradcam');
      ids.forEach((row, i) => row.forEach((_, j) => {
        const g = G[i][j];
        const a = A[i];
        const w = a[0][0].map((_, k) => {
          const sumA = sumOver(a, (y, xx, kk) => a[y][xx][kk], k);
          return sumA === 0 ? 0 : sumOver(a, (y, xx, kk) => (a[y][xx][kk] / sumA) * g[y][xx][kk], k);
        });
        expectMapClose(maps[i][j], weightedMap(a, (_y, _x, k) => w[k]), 1e-3, `xgradcam ${i},${j}`);
      }));
    });

    it('layercam: map = relu(Σ_k relu(g)·A)', () => {
      const maps = run('layercam');
      ids.forEach((row, i) => row.forEach((_, j) => {
        const g = G[i][j];
        expectMapClose(maps[i][j], weightedMap(A[i], (y, xx, k) => relu(g[y][xx][k])), 1e-3, `layercam ${i},${j}`);
      }));
    });

    it('scorecam: w_k = softmax prob of the class on the input masked by normalised channel k', () => {
      const maps = run('scorecam');
      const xs = x.arraySync();
      ids.forEach((row, i) => {
        const a = A[i];
        const channels = a[0][0].length;
        // masks in JS (feat has the input's resolution, so no resize), probabilities from the full original model
        const masked = Array.from({ length: channels }, (_, k) => {
          const vals = a.flat().map((c) => c[k]);
          const lo = Math.min(...vals), hi = Math.max(...vals);
          return xs[i].map((r, y) => r.map((px, xx) => px.map((v) => v * (hi > lo ? (a[y][xx][k] - lo) / (hi - lo) : 0))));
        });
        const probs = (model.predict(tf.tensor4d(masked)) as tf.Tensor2D).arraySync();
        row.forEach((c, j) => {
          expectMapClose(maps[i][j], weightedMap(a, (_y, _x, k) => probs[k][c]), 1e-4, `scorecam ${i},${j}`);
        });
      });
    });
  });

  it('cam equals the exact core on gap-dense and conv-gap heads, and mean M_c + b_c is the logit', () => {
    for (const cm of [tinyGapDense({ classes: 5 }), tinyConvGap({ classes: 5 })]) {
      const x = seededImages(2, 12, 5);
      const ids = [[4, 1], [0, 3]];
      const core = classActivationMaps(cm, x, ids);
      const res = createCamMethod('cam', cm).compute(x, ids);
      expect(res.layer).to.equal(cm.meta.featureLayer);
      const a = res.maps.arraySync().flat(3);
      const b = core.maps.arraySync().flat(3);
      a.forEach((v, i) => expect(v).to.be.closeTo(b[i], 1e-4));
      const la = res.logits.arraySync().flat();
      core.logits.arraySync().flat().forEach((v, i) => expect(la[i]).to.be.closeTo(v, 1e-4));
      tf.dispose([x, core.logits, core.maps, res.logits, res.maps]);
    }
  });

  it('on a GAP → Dense head Grad-CAM weights are w_k^c/(H·W) and normalised CAM == normalised Grad-CAM', () => {
    const cm = tinyGapDense({ classes: 4, channels: 6 });
    const x = seededImages(3, 12, 8);
    const ids = [[0, 3], [1, 2], [3, 3]];
    const grad = createCamMethod('gradcam', cm, { layer: 'feat' });
    const w = grad.weights(x, ids).arraySync();
    const kernel = cm.model.getLayer('fc').getWeights()[0].arraySync() as number[][];
    const hw = 6 * 6;
    ids.flat().forEach((c, r) => w[r].forEach((v, k) => expect(v).to.be.closeTo(kernel[k][c] / hw, 1e-6)));
    const camRes = createCamMethod('cam', cm, { relu: true }).compute(x, ids);
    const gradRes = grad.compute(x, ids);
    const nCam = normalizeMaps(camRes.maps).arraySync().flat(3);
    const nGrad = normalizeMaps(gradRes.maps).arraySync().flat(3);
    nCam.forEach((v, i) => expect(v).to.be.closeTo(nGrad[i], 1e-5));
    tf.dispose([x, camRes.logits, camRes.maps, gradRes.logits, gradRes.maps]);
  });

  it('the exact core still works after a split re-applied the head layers (several inbound nodes)', () => {
    const cm = tinyGapDense({ classes: 3 });
    const x = seededImages(1, 12, 2);
    const g = createCamMethod('gradcam', cm, { layer: 'conv1' }).compute(x, [[1]]);
    const core = classActivationMaps(cm, x, [[1]]);
    const direct = (cm.model.predict(x) as tf.Tensor2D).arraySync()[0];
    core.logits.arraySync()[0].forEach((v, i) => expect(v).to.be.closeTo(direct[i], 1e-5));
    g.logits.arraySync()[0].forEach((v, i) => expect(v).to.be.closeTo(direct[i], 1e-5));
    tf.dispose([x, g.logits, g.maps, core.logits, core.maps]);
  });

  it('splits DAG models (skip connection around the target layer)', () => {
    const input = tf.input({ shape: [6, 6, 2] });
    const a = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'a', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
    const b = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', name: 'b', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(a) as tf.SymbolicTensor;
    const sum = tf.layers.add({ name: 'skip' }).apply([a, b]) as tf.SymbolicTensor;
    const gap = tf.layers.globalAveragePooling2d({}).apply(sum) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(gap) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    const x = seededImages(2, 6).slice([0, 0, 0, 0], [2, 6, 6, 2]) as tf.Tensor4D;
    const res = createCamMethod('gradcam', { model }, { layer: 'b' }).compute(x, [[0], [1]]);
    const direct = (model.predict(x) as tf.Tensor2D).arraySync().flat();
    res.logits.arraySync().flat().forEach((v, i) => expect(v).to.be.closeTo(direct[i], 1e-5));
    tf.dispose([x, res.logits, res.maps]);
  });

  it('no method leaks tensors', async () => {
    const model = tinyDeepHead();
    const cm = tinyGapDense();
    const x = seededImages(2, 8, 3);
    const x12 = seededImages(2, 12, 3);
    await expectNoTensorLeak(() => {
      for (const name of METHOD_NAMES) {
        const res = name === 'cam'
          ? createCamMethod(name, cm).computeNormalized(x12, (l) => [[0, 1], [1, 2]].slice(0, l.shape[0]))
          : createCamMethod(name, { model }, { batchSize: 2 }).computeNormalized(x, [[0, 1], [2, 2]]);
        tf.dispose([res.logits, res.maps]);
        const w = createCamMethod(name, name === 'cam' ? cm : { model }).weights(name === 'cam' ? x12 : x, [[0], [1]]);
        w.dispose();
      }
    });
    tf.dispose([x, x12]);
  });
});
