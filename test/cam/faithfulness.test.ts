import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, expectNoTensorLeak } from '../helpers.js';
import { FaithfulnessAccumulator, curveAuc, orderByMap, blurImage } from '../../src/cam/faithfulness.js';

/** A stand-in "model": P(class 0) = mean of the image, P(class 1) = 1 − that. */
const meanModel = (x: tf.Tensor4D): tf.Tensor2D => tf.tidy(() => {
  const m = x.mean([1, 2, 3]).reshape([-1, 1]);
  return tf.concat([m, tf.sub(1, m)], 1) as tf.Tensor2D;
});

describe('cam/faithfulness', () => {
  before(useEngine);

  it('curve AUC (trapezoid) and ordering', () => {
    expect(curveAuc([1, 1, 1])).to.equal(1);
    expect(curveAuc([1, 0])).to.equal(0.5);
    expect(curveAuc([0, 1, 0, 1])).to.be.closeTo(0.5, 1e-12);
    expect(Array.from(orderByMap(new Float32Array([0.1, 0.9, 0.5, 0.9])))).to.deep.equal([1, 3, 2, 0]);
  });

  it('blur keeps a constant image constant (edges renormalised)', () => {
    const x = tf.fill([1, 9, 7, 3], 0.4) as tf.Tensor4D;
    const b = blurImage(x);
    Array.from(b.dataSync()).forEach((v) => expect(v).to.be.closeTo(0.4, 1e-5));
    tf.dispose([x, b]);
  });

  it('average drop, increase, deletion and insertion against hand-computed values', () => {
    const h = 4, w = 4, c = 0.6, steps = 4;
    const x = tf.fill([1, h, w, 3], c) as tf.Tensor4D;
    const map = new Float32Array(16).map((_, i) => i / 15);
    const acc = new FaithfulnessAccumulator(meanModel, { steps, batchSize: 3 });
    const one = acc.add(x, map, 0);
    // masked image mean = c · mean(map) = c · 0.5; drop = (c − c/2) / c = 0.5
    expect(one.drop).to.be.closeTo(0.5, 1e-6);
    // deletion: after removing k·4 of 16 pixels the mean is c·(1 − k/4): curve c, .75c, .5c, .25c, 0 → AUC c/2
    expect(one.deletionAuc).to.be.closeTo(c / 2, 1e-6);
    // insertion from the blur of a constant image (the same constant): flat at c
    expect(one.insertionAuc).to.be.closeTo(c, 1e-5);
    // a map that darkens nothing (all ones) gives O = Y: no drop, no increase
    acc.add(x, new Float32Array(16).fill(1), 0);
    const r = acc.result();
    expect(r.images).to.equal(2);
    expect(r.averageDrop).to.be.closeTo(25, 1e-4);
    expect(r.increaseInConfidence).to.equal(0);
    expect(r.deletionCurve).to.have.length(steps + 1);
    expect(r.deletionCurve[0]).to.be.closeTo(c, 1e-6);
    expect(r.deletionCurve[steps]).to.be.closeTo(0, 1e-6);
    // class 1 = 1 − mean: masking raises it → counted as an increase in confidence
    const acc1 = new FaithfulnessAccumulator(meanModel, { steps });
    acc1.add(x, map, 1);
    expect(acc1.result().increaseInConfidence).to.equal(100);
    x.dispose();
  });

  it('does not leak tensors', async () => {
    const x = tf.randomUniform([1, 6, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const acc = new FaithfulnessAccumulator(meanModel, { steps: 3 });
    await expectNoTensorLeak(() => { acc.add(x, new Float32Array(36).map((_, i) => (i * 7) % 36), 0); });
    x.dispose();
  });
});
