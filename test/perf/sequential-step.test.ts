import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, expectNoTensorLeak } from '../helpers.js';
import { createFusedTrainStep, createGenericTrainStep, createTrainStep, fusedStepUnsupported } from '../../src/perf/sequential-step.js';

type Builder = () => tf.LayersModel;

function convNet(opts: { frozenFirst?: boolean; softmax?: boolean } = {}): tf.LayersModel {
  const input = tf.input({ shape: [12, 12, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1',
    trainable: !opts.frozenFirst }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'p1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'c2' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.leakyReLU({ alpha: 0.1, name: 'lr' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'valid', name: 'ap' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.conv2d({ filters: 6, kernelSize: 2, strides: 2, padding: 'valid', activation: 'relu', name: 'c3' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU({ name: 'r' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: opts.softmax === false ? 'linear' : 'softmax', name: 'fc' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

function flatNet(): tf.LayersModel {
  return tf.sequential({ layers: [
    tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'valid', useBias: false }),
    tf.layers.flatten(),
    tf.layers.dense({ units: 7, activation: 'relu' }),
    tf.layers.dense({ units: 4 }),
    tf.layers.activation({ activation: 'softmax' }),
  ] });
}

/** Two copies of the same model: one for each step implementation. */
function twins(build: Builder): [tf.LayersModel, tf.LayersModel] {
  const a = build();
  const b = build();
  b.setWeights(a.getWeights());
  return [a, b];
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

async function compareOneStep(build: Builder, inputShape: number[], classes: number, labelsKind: 'ids' | 'onehot') {
  const [fusedModel, genericModel] = twins(build);
  const x = tf.randomUniform(inputShape, -1, 1, 'float32', 7) as tf.Tensor4D;
  const ids = tf.tensor1d(Array.from({ length: inputShape[0] }, (_, i) => i % classes), 'int32');
  const labels = labelsKind === 'ids' ? ids : (tf.oneHot(ids, classes).toFloat() as tf.Tensor2D);
  const fused = createFusedTrainStep(fusedModel, tf.train.sgd(0.5));
  const generic = createGenericTrainStep(genericModel, tf.train.sgd(0.5));
  const lf = fused.run(x, labels);
  const lg = generic.run(x, labels);
  expect(Math.abs(lf.dataSync()[0] - lg.dataSync()[0])).to.be.below(1e-5);
  const wf = fusedModel.getWeights();
  const wg = genericModel.getWeights();
  const before = build().getWeights().length; // same count
  expect(wf.length).to.equal(before);
  for (let i = 0; i < wf.length; i++) {
    expect(maxAbsDiff(wf[i], wg[i]), `weight ${i} (${fusedModel.weights[i].name})`).to.be.below(2e-5);
  }
  tf.dispose([x, ids, labels, lf, lg]);
  return { fusedModel, genericModel };
}

describe('perf/sequential-step: fused train step', () => {
  before(useEngine);

  it('matches tfjs gradients (one SGD step) on a conv/pool/leaky/GAP/softmax chain', async () => {
    await compareOneStep(() => convNet(), [4, 12, 12, 3], 3, 'ids');
  });

  it('matches tfjs gradients on a logits model with one-hot targets', async () => {
    await compareOneStep(() => convNet({ softmax: false }), [3, 12, 12, 3], 3, 'onehot');
  });

  it('matches tfjs gradients with flatten, dense relu and a separate softmax activation layer', async () => {
    await compareOneStep(flatNet, [5, 6, 6, 2], 4, 'ids');
  });

  it('leaves a frozen first layer unchanged and still matches the generic step', async () => {
    let initial: tf.Tensor | undefined;
    const { fusedModel } = await compareOneStep(() => {
      const m = convNet({ frozenFirst: true });
      if (!initial) initial = m.getLayer('c1').getWeights()[0].clone();
      return m;
    }, [2, 12, 12, 3], 3, 'ids');
    expect(fusedModel.getLayer('c1').trainableWeights).to.have.length(0);
    expect(maxAbsDiff(fusedModel.getLayer('c1').getWeights()[0], initial!)).to.equal(0);
    initial!.dispose();
  });

  it('matches momentum SGD over several steps', async () => {
    const [a, b] = twins(() => convNet());
    const optA = tf.train.momentum(0.1, 0.9);
    const fa = createFusedTrainStep(a, optA);
    const gb = createGenericTrainStep(b, tf.train.momentum(0.1, 0.9));
    const x = tf.randomUniform([4, 12, 12, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    const y = tf.tensor1d([0, 1, 2, 1], 'int32');
    for (let s = 0; s < 3; s++) tf.dispose([fa.run(x, y), gb.run(x, y)]);
    const wa = a.getWeights();
    const wb = b.getWeights();
    for (let i = 0; i < wa.length; i++) expect(maxAbsDiff(wa[i], wb[i])).to.be.below(1e-4);
    expect(optA.iterations, 'one iteration per step').to.equal(3);
    tf.dispose([x, y]);
  });

  it('does not leak tensors', async () => {
    const model = convNet();
    const step = createFusedTrainStep(model, tf.train.momentum(0.01, 0.9));
    const x = tf.randomUniform([2, 12, 12, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    const y = tf.tensor1d([0, 2], 'int32');
    await expectNoTensorLeak(() => { step.run(x, y).dispose(); }, 4);
    tf.dispose([x, y]);
  });

  it('chooses the fused path when every layer is supported, else the generic one with the reason', () => {
    const m = convNet();
    expect(createTrainStep(m, tf.train.sgd(0.1)).kind).to.equal('fused-sequential');
    const input = tf.input({ shape: [4, 4, 2] });
    const bn = tf.layers.batchNormalization({ name: 'bn' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2 }).apply(tf.layers.globalAveragePooling2d({}).apply(bn)) as tf.SymbolicTensor;
    const other = tf.model({ inputs: input, outputs: out });
    expect(fusedStepUnsupported(other)).to.match(/'bn' \(BatchNormalization\)/);
    const step = createTrainStep(other, tf.train.sgd(0.1));
    expect(step.kind).to.equal('generic');
    expect(step.reason).to.match(/BatchNormalization/);
  });
});
