// Preprocessing modes against numbers computed independently: Keras' own preprocess_input (values printed by
// Keras 3.15 / NumPy 2.4 for the pixels below, and — when a Keras install is at hand — every 0..255 value of every
// channel, compared bit for bit), plus explicit mean/std and the --preprocessing syntax.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { useEngine, makeTempDir, kerasPython, skipWithReason } from '../helpers.js';
import { preprocessPixels, preprocessTensor, deprocessPixels, parsePreprocessMode } from '../../src/data/preprocess.js';
import { readNpy } from '../../src/util/npy.js';
import { UserError } from '../../src/errors.js';

// RGB pixels [0, 255, 0], [1, 254, 7], [2, 253, 14] and what Keras' preprocess_input makes of them (float32).
const PIXELS = Uint8Array.from([0, 255, 0, 1, 254, 7, 2, 253, 14]);
const KERAS: Record<'tf' | 'torch' | 'caffe', number[]> = {
  tf: [-1.0, 1.0, -1.0, -0.9921568632125854, 0.9921568632125854, -0.9450980424880981, -0.9843137264251709, 0.9843137264251709, -0.8901960849761963],
  torch: [-2.1179039478302, 2.4285714626312256, -1.804444432258606, -2.1007792949676514, 2.4110641479492188, -1.6824400424957275,
    -2.0836544036865234, 2.393557548522949, -1.5604357719421387],
  caffe: [-103.93900299072266, 138.22100830078125, -123.68000030517578, -96.93900299072266, 137.22100830078125, -122.68000030517578,
    -89.93900299072266, 136.22100830078125, -121.68000030517578],
};

describe('data/preprocess: Keras modes and explicit normalisation', function () {
  this.timeout(120_000);
  before(useEngine);

  for (const mode of ['tf', 'torch', 'caffe'] as const) {
    it(`${mode}: the pixel array and the tf op equal Keras' preprocess_input exactly`, () => {
      expect(Array.from(preprocessPixels(PIXELS, mode))).to.deep.equal(KERAS[mode]);
      expect(Array.from(preprocessPixels(Float32Array.from(PIXELS), mode))).to.deep.equal(KERAS[mode]);
      const t = tf.tensor4d(Array.from(PIXELS), [1, 1, 3, 3]);
      const out = preprocessTensor(t, mode);
      expect(Array.from(out.dataSync())).to.deep.equal(KERAS[mode]);
      tf.dispose([t, out]);
      expect(Array.from(deprocessPixels(preprocessPixels(PIXELS, mode), mode))).to.deep.equal(Array.from(PIXELS));
    });
  }

  it('explicit mean/std with channel order and range; the --preprocessing syntax', () => {
    const p = parsePreprocessMode('mean=0.5,0.25,0 std=0.5,0.25,2 order=bgr range=1');
    expect(p).to.deep.equal({ channelOrder: 'bgr', range: 1, mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] });
    // pixel [R, G, B] = [0, 255, 51] → BGR [51, 255, 0] / 255 → [0.2, 1, 0] → ((x - mean) / std)
    const out = preprocessPixels(Uint8Array.from([0, 255, 51]), p);
    expect(out[0]).to.be.closeTo((0.2 - 0.5) / 0.5, 1e-6);
    expect(out[1]).to.be.closeTo((1 - 0.25) / 0.25, 1e-6);
    expect(out[2]).to.equal(0);
    expect(parsePreprocessMode('{"mean": [1, 2, 3], "std": [4, 5, 6]}')).to.deep.equal({ channelOrder: 'rgb', range: 255, mean: [1, 2, 3], std: [4, 5, 6] });
    expect(parsePreprocessMode('tf')).to.equal('tf');
    for (const bad of ['keras', 'mean=1,2 std=1,1,1', 'mean=1,2,3 std=1,0,1', 'mean=1,2,3 std=1,1,1 order=gbr', 'mean=1,2,3 std=1,1,1 range=2', 'what=1']) {
      expect(() => parsePreprocessMode(bad), bad).to.throw(UserError, /--preprocessing/);
    }
  });

  it('every 0..255 value in every channel equals Keras 3 preprocess_input bit for bit (tf, torch, caffe; needs a Keras install)', function () {
    const py = kerasPython();
    if (!py) return skipWithReason(this, 'no Keras install (bench/.venv from scripts/setup-bench.sh, or GAPCAM_KERAS_PYTHON)');
    this.timeout(600_000); // importing TensorFlow in Python takes minutes on a loaded 2-core machine
    const dir = makeTempDir();
    const script = [
      'import os, sys', 'os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"', 'import numpy as np', 'from keras.applications import mobilenet_v2, densenet, vgg16',
      'x = np.arange(256, dtype=np.float32)', 'a = np.stack([x, x[::-1].copy(), (x * 7) % 256], -1)[None, None]',
      'for name, f in [("tf", mobilenet_v2), ("torch", densenet), ("caffe", vgg16)]:',
      '    np.save(os.path.join(sys.argv[1], name + ".npy"), f.preprocess_input(a.copy()).astype(np.float32))',
    ].join('\n');
    execFileSync(py, ['-c', script, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    const px = new Uint8Array(256 * 3);
    for (let i = 0; i < 256; i++) px.set([i, 255 - i, (i * 7) % 256], i * 3);
    for (const mode of ['tf', 'torch', 'caffe'] as const) {
      const keras = readNpy(path.join(dir, `${mode}.npy`)).data;
      const ours = preprocessPixels(px, mode);
      const t = tf.tensor4d(px, [1, 1, 256, 3], 'int32');
      const op = preprocessTensor(t, mode);
      const opData = op.dataSync();
      tf.dispose([t, op]);
      for (let i = 0; i < ours.length; i++) {
        expect(ours[i], `${mode} element ${i}`).to.equal(keras[i]);
        expect(opData[i], `${mode} tf op element ${i}`).to.equal(keras[i]);
      }
    }
  });
});
