import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { installOneDnnKernels, uninstallOneDnnKernels, tunedEngineEnv } from '../../src/perf/kernels.js';

describe('perf/kernels: tfjs conv kernels routed to oneDNN by name', () => {
  before(useEngine);
  after(uninstallOneDnnKernels); // leave the other test files tfjs-node's own kernels

  it('gives the same forward, fused forward and gradients as before the override', function () {
    if (tf.getBackend() !== 'tensorflow') this.skip();
    const x = tf.randomUniform([2, 9, 8, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomUniform([3, 3, 3, 5], -1, 1, 'float32', 2) as tf.Tensor4D;
    const b = tf.randomUniform([5], -1, 1, 'float32', 3) as tf.Tensor1D;
    const run = () => tf.tidy(() => {
      const f = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.square(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, [2, 1], 'same')));
      const [gx, gw] = tf.grads(f)([x, w]);
      const fused = tf.fused.conv2d({ x, filter: w, bias: b, strides: 1, pad: 'valid', activation: 'relu' });
      const dil = tf.conv2d(x, w, 1, 'same', 'NHWC', 2); // not covered: falls back to tfjs-node's kernel
      return [tf.conv2d(x, w, 1, 'same'), fused, gx, gw, dil].map((t) => Array.from(t.dataSync()));
    });
    const before = run();
    const names = installOneDnnKernels();
    expect(names).to.deep.equal(['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']);
    const after = run();
    for (let i = 0; i < before.length; i++) {
      before[i].forEach((v, j) => expect(Math.abs(v - after[i][j]), `output ${i}[${j}]`).to.be.below(1e-4 * Math.max(1, Math.abs(v))));
    }
    tf.dispose([x, w, b]);
  });

  it('puts tfjs-node\'s own kernels back', function () {
    if (tf.getBackend() !== 'tensorflow') this.skip();
    uninstallOneDnnKernels();
    const own = tf.getKernel('Conv2D', 'tensorflow').kernelFunc;
    installOneDnnKernels();
    expect(tf.getKernel('Conv2D', 'tensorflow').kernelFunc).to.not.equal(own);
    uninstallOneDnnKernels();
    expect(tf.getKernel('Conv2D', 'tensorflow').kernelFunc).to.equal(own);
  });

  it('names the environment a launcher should set', () => {
    expect(tunedEngineEnv()).to.deep.equal({ TF_ENABLE_ONEDNN_OPTS: '0', MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_ARENA_MAX: '2' });
  });
});
