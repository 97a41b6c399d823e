// A small conv net really trains on the native tensorflow engine and on the wasm fallback (whose conv gradients come
// from src/engine/wasm-kernels.ts).
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { expectNoTensorLeak, useEngine } from '../helpers.js';
import { fixedValues, onBackend, type TestBackend } from './backends.js';

const SIZE = 12;

/** 32 grey 12×12 images: class 0 has a bright 4×4 square in the top-left half, class 1 in the bottom-right. */
function blobs(): { xs: tf.Tensor4D; ys: tf.Tensor2D; labels: number[] } {
  const n = 32;
  const noise = fixedValues(n * SIZE * SIZE, 42);
  const jitter = fixedValues(n * 2, 43);
  const pixels = new Float32Array(n * SIZE * SIZE);
  const labels: number[] = [];
  for (let k = 0; k < n; k++) {
    const label = k % 2;
    labels.push(label);
    const r0 = (label === 0 ? 1 : 7) + Math.floor((jitter[2 * k] + 1) * 1.5); // 1..3 or 7..9... clipped below
    const c0 = (label === 0 ? 1 : 7) + Math.floor((jitter[2 * k + 1] + 1) * 1.5);
    for (let r = 0; r < SIZE; r++) {
      for (let c = 0; c < SIZE; c++) {
        const inside = r >= r0 && r < Math.min(SIZE, r0 + 4) && c >= c0 && c < Math.min(SIZE, c0 + 4);
        pixels[(k * SIZE + r) * SIZE + c] = (inside ? 1 : 0) + 0.1 * noise[(k * SIZE + r) * SIZE + c];
      }
    }
  }
  return {
    xs: tf.tensor4d(pixels, [n, SIZE, SIZE, 1]),
    ys: tf.oneHot(tf.tensor1d(labels, 'int32'), 2) as tf.Tensor2D,
    labels,
  };
}

function convNet(): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'valid', activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2, activation: 'softmax' }),
    ],
  });
  const init = model.getWeights().map((w, i) => tf.tensor(fixedValues(w.size, 200 + i).map((v) => v * 0.4), w.shape));
  model.setWeights(init);
  tf.dispose(init);
  model.compile({ optimizer: tf.train.adam(0.03), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  return model;
}

async function trainOn(backend: TestBackend): Promise<{ first: number; last: number; accuracy: number }> {
  return onBackend(backend, async () => {
    const { xs, ys, labels } = blobs();
    const model = convNet();
    try {
      const history = await model.fit(xs, ys, { epochs: 15, batchSize: 16, shuffle: false, verbose: 0 });
      const losses = history.history.loss as number[];
      const predicted = tf.tidy(() => (model.predict(xs) as tf.Tensor).argMax(-1).dataSync());
      const accuracy = labels.filter((l, i) => predicted[i] === l).length / labels.length;
      // Training itself leaks nothing across rounds.
      await expectNoTensorLeak(async () => { await model.fit(xs, ys, { epochs: 1, batchSize: 16, verbose: 0 }); }, 2);
      return { first: losses[0], last: losses[losses.length - 1], accuracy };
    } finally {
      tf.dispose([xs, ys]);
      model.dispose();
    }
  });
}

describe('engine: a small conv net trains', function () {
  before(useEngine);

  for (const backend of ['tensorflow', 'wasm'] as const) {
    it(`on ${backend}: the loss falls and the training set is learnt`, async () => {
      const r = await trainOn(backend);
      if (process.env.GAPCAM_TEST_VERBOSE) console.log(`      ${backend}: loss ${r.first.toFixed(3)} → ${r.last.toFixed(3)}, accuracy ${r.accuracy}`);
      expect(r.last, 'final loss').to.be.lessThan(r.first * 0.5);
      expect(r.accuracy, 'training accuracy').to.be.at.least(0.9);
    });
  }
});
