// The wasm training kernels (src/engine/wasm-kernels.ts) against tfjs's pure-JavaScript `cpu` backend.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { fixedValues, maxAbsDiff, onBackend, sizeOf } from './backends.js';
import { wasmTrainingKernelsRegistered } from '../../src/engine/wasm-kernels.js';

type Pad = 'same' | 'valid';
interface Case { x: [number, number, number, number]; f: [number, number, number, number]; stride: number | [number, number]; pad: Pad }

const cases: Case[] = [
  { x: [2, 7, 6, 3], f: [3, 3, 3, 4], stride: 1, pad: 'same' },
  { x: [2, 7, 6, 3], f: [3, 3, 3, 4], stride: 1, pad: 'valid' },
  { x: [2, 8, 8, 3], f: [3, 3, 3, 5], stride: 2, pad: 'same' },
  { x: [2, 7, 9, 3], f: [3, 3, 3, 5], stride: 2, pad: 'same' }, // odd sizes: asymmetric 'same' padding
  { x: [2, 8, 9, 3], f: [3, 3, 3, 4], stride: 2, pad: 'valid' }, // last row/column never read
  { x: [1, 9, 8, 2], f: [2, 2, 2, 3], stride: 2, pad: 'valid' },
  { x: [1, 9, 8, 2], f: [4, 5, 2, 3], stride: 2, pad: 'same' }, // even, non-square filter
  { x: [1, 8, 8, 4], f: [1, 1, 4, 6], stride: 2, pad: 'same' }, // 1x1: phases without taps
  { x: [3, 10, 10, 5], f: [5, 5, 5, 6], stride: 1, pad: 'same' },
  { x: [2, 9, 10, 3], f: [3, 2, 3, 2], stride: [2, 1], pad: 'same' }, // unequal strides
  { x: [1, 12, 12, 16], f: [3, 3, 16, 8], stride: 1, pad: 'same' },
];

interface Grads { dx: Float32Array; dw: Float32Array; transposed: Float32Array }

/** dx and dW of sum(conv2d(x, w) * dy) by tf.grads, plus dx again through conv2dTranspose, on the active backend. */
async function gradients(c: Case, seed: number): Promise<Grads> {
  const x = tf.tensor4d(fixedValues(sizeOf(c.x), seed), c.x);
  const w = tf.tensor4d(fixedValues(sizeOf(c.f), seed + 1), c.f);
  const y = tf.conv2d(x, w, c.stride, c.pad);
  const dy = tf.tensor4d(fixedValues(y.size, seed + 2), y.shape);
  const [gx, gw] = tf.grads((a: tf.Tensor4D, b: tf.Tensor4D) => tf.sum(tf.mul(tf.conv2d(a, b, c.stride, c.pad), dy)))([x, w]);
  const tx = tf.conv2dTranspose(dy, w, c.x, c.stride, c.pad);
  const out = { dx: (await gx.data()) as Float32Array, dw: (await gw.data()) as Float32Array, transposed: (await tx.data()) as Float32Array };
  tf.dispose([x, w, y, dy, gx, gw, tx]);
  return out;
}

const label = (c: Case) => `x [${c.x}] filter [${c.f}] stride ${c.stride} ${c.pad}`;

describe('engine: wasm training kernels vs the cpu backend', function () {
  before(useEngine);

  it('registers Conv2DBackpropFilter and replaces the stock Conv2DBackpropInput for wasm', async () => {
    await onBackend('wasm', () => {
      expect(tf.getKernel('Conv2DBackpropFilter', 'wasm'), 'Conv2DBackpropFilter').to.not.equal(undefined);
      expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.kernelFunc.name).to.equal('conv2DBackpropInput');
      expect(tf.getKernel('Conv2DBackpropInput', 'wasm')?.setupFunc, 'stock kernel has a setupFunc').to.equal(undefined);
      expect(wasmTrainingKernelsRegistered()).to.equal(true);
    });
  });

  for (const c of cases) {
    it(`dx and dW agree within 1e-4: ${label(c)}`, async () => {
      const ref = await onBackend('cpu', () => gradients(c, 11));
      const got = await onBackend('wasm', () => gradients(c, 11));
      const dxDiff = maxAbsDiff(got.dx, ref.dx);
      const dwDiff = maxAbsDiff(got.dw, ref.dw);
      expect(dxDiff, 'max |dx wasm − dx cpu|').to.be.at.most(1e-4);
      expect(dwDiff, 'max |dW wasm − dW cpu|').to.be.at.most(1e-4);
      expect(maxAbsDiff(got.transposed, ref.transposed), 'conv2dTranspose').to.be.at.most(1e-4);
      // The gradients are not trivially zero.
      expect(Math.max(...Array.from(ref.dw, Math.abs))).to.be.greaterThan(0.1);
      // GAPCAM_TEST_VERBOSE=1 prints the measured differences.
      if (process.env.GAPCAM_TEST_VERBOSE) console.log(`      ${label(c)}: dx ${dxDiff.toExponential(2)}, dW ${dwDiff.toExponential(2)}`);
    });
  }

  it('frees every intermediate (no tensors and no wasm buffers left behind)', async () => {
    await onBackend('wasm', async () => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const backend = tf.backend() as any;
      await gradients(cases[2], 3);
      const tensors = tf.memory().numTensors;
      const buffers = backend.numDataIds();
      for (const c of [cases[0], cases[2], cases[7], cases[9]]) await gradients(c, 5);
      expect(tf.memory().numTensors, 'tensors').to.equal(tensors);
      expect(backend.numDataIds(), 'wasm data buffers').to.equal(buffers);
    });
  });

  it('rejects NCHW with a clear error', async () => {
    await onBackend('wasm', () => {
      const x = tf.zeros([1, 2, 5, 5]);
      const dy = tf.zeros([1, 3, 5, 5]);
      try {
        expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy },
          { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] } as unknown as tf.NamedAttrMap))
          .to.throw(/Conv2DBackpropFilter: data format 'NCHW' is not supported \(only NHWC\)/);
      } finally {
        tf.dispose([x, dy]);
      }
    });
  });
});
