// The native TensorFlow engine (tfjs-node) agrees with tfjs's pure-JavaScript `cpu` backend on small fixed inputs.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { fixedValues, maxAbsDiff, onBackend, sizeOf, type TestBackend } from './backends.js';
import { currentEngine } from '../../src/engine.js';

const TOL = 1e-4;
/** GAPCAM_TEST_VERBOSE=1 prints the measured differences. */
const report = (line: string) => { if (process.env.GAPCAM_TEST_VERBOSE) console.log(`      ${line}`); };

/** The native backend's name under tfjs ('tensorflow' for both tfjs-node and tfjs-node-gpu). */
const NATIVE: TestBackend = 'tensorflow';

async function convAndGrads(stride: number, pad: 'same' | 'valid'): Promise<Float32Array[]> {
  const xs: [number, number, number, number] = [2, 9, 8, 3];
  const fs: [number, number, number, number] = [3, 3, 3, 4];
  const x = tf.tensor4d(fixedValues(sizeOf(xs), 1), xs);
  const w = tf.tensor4d(fixedValues(sizeOf(fs), 2), fs);
  const y = tf.conv2d(x, w, stride, pad);
  const dy = tf.tensor4d(fixedValues(y.size, 3), y.shape);
  const [gx, gw] = tf.grads((a: tf.Tensor4D, b: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(a, b, stride, pad), dy)))([x, w]);
  const out = await Promise.all([y, gx, gw].map(async (t) => (await t.data()) as Float32Array));
  tf.dispose([x, w, y, dy, gx, gw]);
  return out;
}

async function matMuls(): Promise<Float32Array[]> {
  const a = tf.tensor2d(fixedValues(7 * 13, 4), [7, 13]);
  const b = tf.tensor2d(fixedValues(13 * 5, 5), [13, 5]);
  const c = tf.tensor2d(fixedValues(5 * 13, 6), [5, 13]);
  const outs = [tf.matMul(a, b), tf.matMul(a, c, false, true), tf.matMul(b, a, true, true)];
  const data = await Promise.all(outs.map(async (t) => (await t.data()) as Float32Array));
  tf.dispose([a, b, c, ...outs]);
  return data;
}

/** A tiny conv model with fixed initial weights, trained a few SGD steps (no shuffling); returns its weights. */
async function trainTiny(steps: number): Promise<Float32Array[]> {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'valid', activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  const init = model.getWeights().map((w, i) => tf.tensor(fixedValues(w.size, 100 + i).map((v) => v * 0.5), w.shape));
  model.setWeights(init);
  tf.dispose(init);
  model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
  const xs = tf.tensor4d(fixedValues(6 * 8 * 8 * 2, 7), [6, 8, 8, 2]);
  const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32'), 3);
  await model.fit(xs, ys, { epochs: steps, batchSize: 6, shuffle: false, verbose: 0 });
  const weights = await Promise.all(model.getWeights().map(async (w) => (await w.data()) as Float32Array));
  tf.dispose([xs, ys]);
  model.dispose();
  return weights;
}

describe('engine: native tensorflow vs the cpu backend', function () {
  before(useEngine);

  it('runs on the native engine', () => {
    expect(currentEngine()?.name).to.match(/^tensorflow/);
    expect(tf.getBackend()).to.equal(NATIVE);
  });

  it('hands TensorFlow\'s start-up pages back at start (gapcam\'s engine build on Linux), and every test after it still runs', function () {
    const binding = (tf.backend() as unknown as { binding: Record<string, unknown> }).binding;
    if (typeof binding.releaseLibraryPages !== 'function' || process.platform !== 'linux' || process.env.GAPCAM_RELEASE_LIBRARY_PAGES === '0') this.skip();
    // The read-only mappings of libtensorflow_cc and libtensorflow_framework span ~1 GB; what is actually resident
    // and unshared is handed back (MADV_PAGEOUT), which bench/PERFORMANCE.md measures.
    expect(currentEngine()?.releasedLibraryMiB).to.be.greaterThan(100);
  });

  for (const [stride, pad] of [[1, 'same'], [2, 'valid'], [2, 'same']] as const) {
    it(`conv2d and both of its gradients agree (stride ${stride}, ${pad})`, async () => {
      const ref = await onBackend('cpu', () => convAndGrads(stride, pad));
      const got = await onBackend(NATIVE, () => convAndGrads(stride, pad));
      ['conv2d', 'dx', 'dW'].forEach((name, i) => expect(maxAbsDiff(got[i], ref[i]), name).to.be.at.most(TOL));
      report(`stride ${stride} ${pad}: ` + ['conv2d', 'dx', 'dW'].map((n, i) => `${n} ${maxAbsDiff(got[i], ref[i]).toExponential(2)}`).join(', '));
    });
  }

  it('matMul agrees (plain and transposed)', async () => {
    const ref = await onBackend('cpu', matMuls);
    const got = await onBackend(NATIVE, matMuls);
    got.forEach((g, i) => expect(maxAbsDiff(g, ref[i]), `matMul #${i}`).to.be.at.most(TOL));
    report('matMul: ' + got.map((g, i) => maxAbsDiff(g, ref[i]).toExponential(2)).join(', '));
  });

  it('three SGD steps of a tiny conv model give the same weights', async () => {
    const start = await onBackend('cpu', () => trainTiny(0));
    const ref = await onBackend('cpu', () => trainTiny(3));
    const got = await onBackend(NATIVE, () => trainTiny(3));
    expect(got.length).to.equal(ref.length);
    got.forEach((g, i) => expect(maxAbsDiff(g, ref[i]), `weight #${i}`).to.be.at.most(TOL));
    report('weights after 3 SGD steps: ' + got.map((g, i) => maxAbsDiff(g, ref[i]).toExponential(2)).join(', '));
    // Training moved the weights, so the comparison is not vacuous.
    expect(Math.max(...ref.map((r, i) => maxAbsDiff(r, start[i])))).to.be.greaterThan(1e-3);
  });
});
