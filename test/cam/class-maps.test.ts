import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, expectNoTensorLeak } from '../helpers.js';
import { camGraph, classActivationMaps, topK, topKSelection, upsampleMaps, normalizeMaps, normalizeArray, resizeBilinearArray } from '../../src/cam/class-maps.js';
import { tinyGapDense, tinyConvGap, seededImages, layerOutput } from './tiny-models.js';

describe('cam/class-maps', () => {
  before(useEngine);

  it('gap-dense: mean_xy M_c + b_c equals the pre-softmax logit for every class', () => {
    const cm = tinyGapDense({ classes: 6 });
    const x = seededImages(3, 12);
    const all = [0, 1, 2, 3, 4, 5];
    const { logits, maps } = classActivationMaps(cm, x, [all, all, all]);
    const out = (cm.model.predict(x) as tf.Tensor2D).arraySync();
    const bias = (cm.model.getLayer('fc').getWeights()[1].arraySync() as number[]);
    const m = maps.arraySync();
    const l = logits.arraySync();
    expect(maps.shape).to.deep.equal([3, 6, 6, 6]);
    for (let i = 0; i < 3; i++) {
      for (let c = 0; c < 6; c++) {
        let s = 0;
        for (let y = 0; y < 6; y++) for (let xx = 0; xx < 6; xx++) s += m[i][y][xx][c];
        expect(s / 36 + bias[c]).to.be.closeTo(out[i][c], 1e-4);
        expect(l[i][c]).to.be.closeTo(out[i][c], 1e-4);
      }
    }
    tf.dispose([x, logits, maps]);
  });

  it('takes the fast forward (src/perf) for chain models and gives the tfjs-layers sub-model\'s two outputs', () => {
    for (const cm of [tinyGapDense({ classes: 6 }), tinyConvGap({ classes: 4 })]) {
      const graph = camGraph(cm);
      expect(graph.split, cm.meta.headKind).to.not.equal(undefined);
      const x = seededImages(3, 12);
      const [f, h] = graph.sub.predict(x) as tf.Tensor[];
      const { logits, maps } = classActivationMaps(cm, x, topKSelection(1));
      // Each path's logit from its own feature map: equal up to float summation order.
      const subLogits = graph.kernel ? tf.add(tf.matMul(h as tf.Tensor2D, graph.kernel), graph.bias ?? 0) : h;
      expect(tf.max(tf.abs(tf.sub(logits, subLogits))).dataSync()[0]).to.be.below(1e-4);
      tf.dispose([x, f, h, logits, maps, subLogits]);
    }
  });

  it('gap-dense with a softmax Dense: logits are pre-softmax (softmax(logits) = model output)', () => {
    const cm = tinyGapDense({ classes: 5, softmax: true });
    const x = seededImages(2, 12, 3);
    const ids = [[4, 0], [1, 1]];
    const { logits, maps } = classActivationMaps(cm, x, ids);
    const probs = (cm.model.predict(x) as tf.Tensor2D).arraySync();
    const sm = tf.softmax(logits).arraySync();
    for (let i = 0; i < 2; i++) for (let c = 0; c < 5; c++) expect(sm[i][c]).to.be.closeTo(probs[i][c], 1e-5);
    // M_c independently: plain loops over feature activations and Dense kernel columns
    const f = layerOutput(cm.model, 'feat', x);
    const kernel = cm.model.getLayer('fc').getWeights()[0].arraySync() as number[][];
    const m = maps.arraySync();
    for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) for (let y = 0; y < 6; y++) for (let xx = 0; xx < 6; xx++) {
      let s = 0;
      for (let k = 0; k < f[i][y][xx].length; k++) s += kernel[k][ids[i][j]] * f[i][y][xx][k];
      expect(m[i][y][xx][j]).to.be.closeTo(s, 1e-4);
    }
    tf.dispose([x, logits, maps]);
  });

  it('conv-gap: M_c is channel c of the class-score map and its mean is the logit', () => {
    const cm = tinyConvGap({ classes: 4 });
    const x = seededImages(2, 12, 9);
    const ids = [[3, 1], [0, 2]];
    const { logits, maps } = classActivationMaps(cm, x, ids);
    const f = layerOutput(cm.model, 'cls', x);
    const out = (cm.model.predict(x) as tf.Tensor2D).arraySync();
    const m = maps.arraySync();
    const l = logits.arraySync();
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 2; j++) {
        let s = 0;
        for (let y = 0; y < 12; y++) for (let xx = 0; xx < 12; xx++) {
          expect(m[i][y][xx][j]).to.be.closeTo(f[i][y][xx][ids[i][j]], 1e-6);
          s += m[i][y][xx][j];
        }
        expect(s / 144).to.be.closeTo(out[i][ids[i][j]], 1e-4);
      }
      for (let c = 0; c < 4; c++) expect(l[i][c]).to.be.closeTo(out[i][c], 1e-6);
    }
    tf.dispose([x, logits, maps]);
  });

  it('selects classes from the same pass (top-k) and topK orders best first', () => {
    const cm = tinyGapDense({ classes: 6 });
    const x = seededImages(2, 12, 4);
    const res = classActivationMaps(cm, x, topKSelection(3));
    const out = (cm.model.predict(x) as tf.Tensor2D).arraySync();
    for (let i = 0; i < 2; i++) {
      const order = [...out[i].keys()].sort((a, b) => out[i][b] - out[i][a]).slice(0, 3);
      expect(res.classIds[i]).to.deep.equal(order);
    }
    const t = topK(res.logits, 2);
    expect(t.ids[0]).to.deep.equal(res.classIds[0].slice(0, 2));
    expect(t.scores[0][0]).to.be.at.least(t.scores[0][1]);
    tf.dispose([x, res.logits, res.maps]);
  });

  it('rejects bad selections with one-line UserErrors', () => {
    const cm = tinyGapDense({ classes: 4 });
    const x = seededImages(2, 12);
    expect(() => classActivationMaps(cm, x, [[0], [9]])).to.throw(/class id 9 is out of range 0..3/);
    expect(() => classActivationMaps(cm, x, [[0], [1, 2]])).to.throw(/expected 1 classes for every image/);
    expect(() => classActivationMaps({ ...cm, meta: { ...cm.meta, featureLayer: 'nope' } }, x, [[0], [1]])).to.throw(/featureLayer 'nope' is not a layer/);
    x.dispose();
  });

  it('upsampleMaps uses half-pixel centres by default; normalisation maps to [0, 1]', () => {
    const m = tf.tensor4d([0, 1, 2, 3], [1, 2, 2, 1]);
    const up = upsampleMaps(m, [4, 4]).arraySync();
    // half-pixel centres: output pixel 0 samples source coordinate -0.25 → clamped 0; pixel 1 samples 0.25
    expect(up[0][0][0][0]).to.be.closeTo(0, 1e-6);
    expect(up[0][0][1][0]).to.be.closeTo(0.25, 1e-6);
    expect(up[0][0][3][0]).to.be.closeTo(1, 1e-6);
    const legacy = upsampleMaps(m, [4, 4], { halfPixelCenters: false }).arraySync();
    expect(legacy[0][0][1][0]).to.be.closeTo(0.5, 1e-6);
    // [y][x][c]: channel 0 = -2, 2, 5, 5; channel 1 = 3, 3, 3, 3 (constant → zeros)
    const n = normalizeMaps(tf.tensor4d([-2, 3, 2, 3, 5, 3, 5, 3], [1, 2, 2, 2]));
    const nv = Array.from(n.dataSync());
    [0, 0, 4 / 7, 0, 1, 0, 1, 0].forEach((v, i) => expect(nv[i]).to.be.closeTo(v, 1e-6));
    const r = normalizeMaps(tf.tensor4d([-2, 0, 2, 6], [1, 2, 2, 1]), { relu: true });
    const rv = Array.from(r.dataSync());
    [0, 0, 1 / 3, 1].forEach((v, i) => expect(rv[i]).to.be.closeTo(v, 1e-6));
    expect(Array.from(normalizeArray(new Float32Array([1, 3, 2])))).to.deep.equal([0, 1, 0.5]);
    tf.dispose([m, n, r]);
  });

  it('resizeBilinearArray matches upsampleMaps (half-pixel centres) at odd sizes', () => {
    const src = tf.randomUniform([1, 5, 7, 1], -1, 1, 'float32', 2) as tf.Tensor4D;
    const data = src.dataSync() as Float32Array;
    for (const [H, W] of [[13, 9], [5, 7], [31, 44], [3, 2]]) {
      const ref = upsampleMaps(src, [H, W]);
      const a = resizeBilinearArray(data, 5, 7, H, W);
      const r = ref.dataSync();
      a.forEach((v, i) => expect(v).to.be.closeTo(r[i], 1e-5));
      ref.dispose();
    }
    src.dispose();
  });

  it('does not leak tensors', async () => {
    const cm = tinyGapDense();
    const conv = tinyConvGap();
    const x = seededImages(2, 12);
    await expectNoTensorLeak(() => {
      for (const model of [cm, conv]) {
        const r = classActivationMaps(model, x, topKSelection(2));
        tf.dispose([r.logits, r.maps]);
      }
    });
    x.dispose();
  });
});
