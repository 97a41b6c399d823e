// Models saved by Keras 3 itself (a narrow MobileNetV2 as .keras and .h5; a functional net with BatchNorm, a
// residual Add, depthwise and separable convolutions and a Concatenate as .keras), written by
// test/models/fixtures/make_own_models.py with the Keras venv (skipped, saying why, without one): gapcam builds them,
// reproduces Keras' outputs, recognises MobileNetV2 (tf preprocessing, out_relu), and trains them from a recipe.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir, kerasPython, skipWithReason } from '../helpers.js';
import { projectRoot } from '../../src/paths.js';
import { readNpy, encodeNpy } from '../../src/util/npy.js';
import { saveKerasArchive } from '../../src/models/keras-archive.js';
import { residualNet, depthwiseNet } from './own-nets.js';
import { loadKerasModel } from '../../src/models/keras-model.js';
import { loadModelRef } from '../../src/models/refs.js';
import { loadCamModel } from '../../src/models/meta.js';
import { runTraining } from '../../src/train/run.js';
import { writeMiniCub } from '../train/mini-cub.js';

const NO_KERAS = 'no Keras install (bench/.venv from scripts/setup-bench.sh, or GAPCAM_KERAS_PYTHON)';

describe('models: Keras-saved models of one\'s own (.keras, .h5)', function () {
  this.timeout(600_000); // Keras (Python) writes the models: minutes on a loaded 2-core machine
  before(useEngine);
  let dir: string | undefined;
  before(function () {
    const py = kerasPython();
    if (!py) return;
    dir = makeTempDir();
    execFileSync(py, [path.join(projectRoot, 'test', 'models', 'fixtures', 'make_own_models.py'), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  });

  for (const file of ['mnv2.keras', 'mnv2.h5', 'own_net.keras']) {
    it(`${file} builds in tfjs and reproduces Keras' outputs`, async function () {
      if (!dir) return skipWithReason(this, NO_KERAS);
      const m = await loadKerasModel(path.join(dir, file));
      const stem = file.split('.')[0];
      const x = readNpy(path.join(dir, `${stem}_x.npy`));
      const y = readNpy(path.join(dir, `${stem}_y.npy`));
      const out = tf.tidy(() => (m.predict(tf.tensor(x.data, x.shape)) as tf.Tensor).dataSync());
      expect(out.length).to.equal(y.data.length);
      out.forEach((v, i) => expect(v, `output ${i}`).to.be.closeTo(y.data[i], 1e-5));
      m.dispose();
    });
  }

  it("Keras 3's load_model reads gapcam's .keras (residual and depthwise nets with BN) and computes the same outputs", async function () {
    const py = kerasPython();
    if (!py || !dir) return skipWithReason(this, NO_KERAS);
    const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 3);
    fs.writeFileSync(path.join(dir, 'gx.npy'), encodeNpy(x.dataSync() as Float32Array, [2, 32, 32, 3]));
    const expected: Float32Array[] = [];
    for (const [i, m] of [residualNet(), depthwiseNet()].entries()) {
      await saveKerasArchive(m, path.join(dir, `g${i}.keras`));
      expected.push(tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array));
      m.dispose();
    }
    x.dispose();
    const script = ['import os, sys', 'os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"', 'import keras, numpy as np', 'd = sys.argv[1]',
      'x = np.load(os.path.join(d, "gx.npy"))',
      'for i in range(2): np.save(os.path.join(d, f"g{i}_y.npy"), keras.models.load_model(os.path.join(d, f"g{i}.keras")).predict(x, verbose=0).astype(np.float32))'].join('\n');
    execFileSync(py, ['-c', script, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    expected.forEach((e, i) => {
      const y = readNpy(path.join(dir!, `g${i}_y.npy`)).data;
      e.forEach((v, j) => expect(y[j], `net ${i} output ${j}`).to.be.closeTo(v, 1e-5));
    });
  });

  it('MobileNetV2 is recognised (tf preprocessing, CAM head, cut out_relu); own_net trains from a recipe', async function () {
    if (!dir) return skipWithReason(this, NO_KERAS);
    const ref = await loadModelRef(path.join(dir, 'mnv2.keras'));
    expect(ref.kind).to.equal('keras');
    expect(ref.preprocessing).to.equal('tf');
    expect(ref.meta).to.include({ featureLayer: 'out_relu', classifierLayer: 'predictions', preprocessing: 'tf' });
    ref.model.dispose();
    const work = makeTempDir();
    const cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 8, size: 32 });
    const recipe = path.join(work, 'own.json');
    fs.writeFileSync(recipe, JSON.stringify({
      model: { backbone: path.join(dir, 'own_net.keras'), cutAt: 'features', head: { convFilters: 8 } },
      data: { dataset: cub, inputSize: 32, trainTransforms: [{ op: 'resize' }], valSplit: 'none' },
      optimizer: { type: 'adam' }, lr: 1e-3, batchSize: 2, epochs: 1, evaluation: { split: 'none' },
    }));
    const res = await runTraining({ recipe, checkpointRoot: path.join(work, 'ck'), runName: 'own', cacheDir: null, maxSteps: 2 });
    expect(res.globalStep).to.equal(2);
    const cam = await loadCamModel(path.join(res.runDir, 'last'));
    expect(cam.meta.featureLayer).to.equal('gap_conv');
    cam.model.dispose();
  });
});
