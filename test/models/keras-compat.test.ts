// Compatibility with real Keras: fixtures written by Keras 3.15 (test/models/fixtures/make_keras_fixtures.py) load
// into the same architecture built in tfjs and reproduce Keras' outputs; and, when a Keras install is at hand
// (bench/.venv from scripts/setup-bench.sh, or GAPCAM_KERAS_PYTHON), Keras `load_weights` reads gapcam's export.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { useEngine, makeTempDir, kerasPython } from '../helpers.js';
import { projectRoot } from '../../src/paths.js';
import { readNpy } from '../../src/util/npy.js';
import { loadKerasWeights, readKerasH5, saveKerasH5 } from '../../src/models/keras-h5.js';
import { loadKerasModelH5 } from '../../src/models/keras-model.js';
import { loadModelRef } from '../../src/models/refs.js';
import { UserError } from '../../src/errors.js';

const fixtures = path.join(projectRoot, 'test', 'models', 'fixtures');

/** The fixture architecture in tfjs; `named` gives the Keras layer names, else tfjs picks its own. */
function kfix(named: boolean, seed = 1): tf.LayersModel {
  const n = (name: string) => (named ? { name } : {});
  const input = tf.input({ shape: [8, 8, 3], ...n('input_1') });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed }), ...n('conv_a') }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ ...n('bn_a') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.leakyReLU({ alpha: 0.1, ...n('leaky_a') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, ...n('pool_a') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), ...n('conv_b') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ ...n('gap') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }), ...n('cls') }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'softmax', ...n('sm') }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x, name: 'kfix' });
}

function predict(m: tf.LayersModel, x: Float32Array): Float32Array {
  return tf.tidy(() => (m.predict(tf.tensor4d(x, [2, 8, 8, 3])) as tf.Tensor).dataSync() as Float32Array);
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void {
  expect(a.length).to.equal(b.length);
  for (let i = 0; i < a.length; i++) expect(a[i], `element ${i}`).to.be.closeTo(b[i], tol);
}

describe('models/keras-compat (files written and read by real Keras)', () => {
  before(useEngine);
  const x = readNpy(path.join(fixtures, 'kfix_x.npy'));
  const y = readNpy(path.join(fixtures, 'kfix_y.npy'));

  it('a Keras 3 .weights.h5 loads (by the layer names Keras records) and reproduces Keras outputs', async () => {
    const w = await readKerasH5(path.join(fixtures, 'kfix.weights.h5'));
    expect(w.layout).to.equal('keras3');
    expect(w.groupKeys?.get('conv2d_1')).to.equal('conv_b');
    const m = kfix(true);
    const rep = await loadKerasWeights(m, path.join(fixtures, 'kfix.weights.h5'));
    expect(rep.loaded).to.deep.equal(['conv_a', 'bn_a', 'conv_b', 'cls']);
    expectClose(predict(m, x.data), y.data);
    // a model with tfjs' own layer names is matched through Keras 3's class-name keys
    const anon = kfix(false, 9);
    await loadKerasWeights(anon, path.join(fixtures, 'kfix.weights.h5'));
    expectClose(predict(anon, x.data), y.data);
    m.dispose();
    anon.dispose();
  });

  it('a legacy model.save .h5 (model_weights + model_config) loads by name and by order', async () => {
    const file = path.join(fixtures, 'kfix_legacy.h5');
    const w = await readKerasH5(file);
    expect(w.layout).to.equal('keras2-model');
    expect((w.modelConfig as { class_name: string }).class_name).to.equal('Functional');
    const m = kfix(true, 3);
    expect((await loadKerasWeights(m, file)).match).to.equal('name');
    expectClose(predict(m, x.data), y.data);
    const anon = kfix(false, 4);
    expect((await loadKerasWeights(anon, file)).match).to.equal('order');
    expectClose(predict(anon, x.data), y.data);
    m.dispose();
    anon.dispose();
  });

  it('a whole Keras 3 model (legacy .h5: architecture + weights) loads without any tfjs code for it', async () => {
    const file = path.join(fixtures, 'kfix_legacy.h5');
    const m = await loadKerasModelH5(file);
    expect(m.layers.map((l) => l.name)).to.deep.equal(['input_1', 'conv_a', 'bn_a', 'leaky_a', 'pool_a', 'conv_b', 'gap', 'cls', 'sm']);
    expectClose(predict(m, x.data), y.data);
    m.dispose();
    const ref = await loadModelRef(file);
    expect(ref.kind).to.equal('keras-h5');
    expect(ref.meta).to.include({ headKind: 'gap-dense', featureLayer: 'conv_b', poolingLayer: 'gap', classifierLayer: 'cls', outputIsSoftmax: true });
    ref.model.dispose();
    let err: unknown;
    await loadKerasModelH5(path.join(fixtures, 'kfix.weights.h5')).catch((e) => (err = e));
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/weights only/);
  });

  it('Keras load_weights and load_model read gapcam\'s export and compute the same outputs (needs a Keras install)', async function () {
    const py = kerasPython();
    if (!py) this.skip();
    const m = kfix(true, 5);
    await loadKerasWeights(m, path.join(fixtures, 'kfix_legacy.h5'));
    // perturb so that the export differs from the fixture
    const bn = m.getLayer('bn_a');
    const [g, b, mean, v] = bn.getWeights();
    const newBn = [g.mul(1.5), b.add(0.3), mean.sub(0.2), v.mul(2)];
    bn.setWeights(newBn);
    tf.dispose(newBn);
    const ours = predict(m, x.data);
    const dir = makeTempDir();
    const file = path.join(dir, 'kfix_export.h5');
    const full = path.join(dir, 'kfix_full.h5');
    await saveKerasH5(m, file);
    await saveKerasH5(m, full, { includeModelConfig: true });
    const script = [
      'import sys, json, os',
      'os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"',
      `sys.path.insert(0, ${JSON.stringify(fixtures)})`,
      'import numpy as np',
      'from make_keras_fixtures import build',
      'm = build()',
      `m.load_weights(${JSON.stringify(file)})`,
      `x = np.load(${JSON.stringify(path.join(fixtures, 'kfix_x.npy'))})`,
      'print("RESULT" + json.dumps(m.predict(x, verbose=0).reshape(-1).tolist()))',
      'm2 = build()',
      `m2.load_weights(${JSON.stringify(full)})`,
      'print("RESULT" + json.dumps(m2.predict(x, verbose=0).reshape(-1).tolist()))',
      'import keras',
      `m3 = keras.models.load_model(${JSON.stringify(full)}, compile=False)`,
      'print("RESULT" + json.dumps(m3.predict(x, verbose=0).reshape(-1).tolist()))',
    ].join('\n');
    const out = execFileSync(py!, ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 120_000 });
    const results = out.split('\n').filter((l) => l.startsWith('RESULT')).map((l) => JSON.parse(l.slice('RESULT'.length)) as number[]);
    expect(results).to.have.length(3); // load_weights (plain), load_weights (with model_config), load_model
    for (const r of results) expectClose(r, ours);
    m.dispose();
  });
});
