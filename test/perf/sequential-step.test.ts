import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, expectNoTensorLeak } from '../helpers.js';
import { createFusedTrainStep, createGenericTrainStep, createTrainStep, fusedStepUnsupported, FusedGradients } from '../../src/perf/sequential-step.js';
import * as k from '../../src/perf/native.js';

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

  it('matches Adam over two steps, and continues a generic step\'s momentum slots', () => {
    const x = tf.randomUniform([3, 12, 12, 3], -1, 1, 'float32', 8) as tf.Tensor4D;
    const y = tf.tensor1d([2, 0, 1], 'int32');
    const [a, b] = twins(() => convNet());
    const fa = createFusedTrainStep(a, tf.train.adam(0.01));
    const gb = createGenericTrainStep(b, tf.train.adam(0.01));
    for (let s = 0; s < 2; s++) tf.dispose([fa.run(x, y), gb.run(x, y)]);
    a.getWeights().forEach((w, i) => expect(maxAbsDiff(w, b.getWeights()[i])).to.be.below(1e-4));
    // one optimizer shared: generic then fused must equal generic then generic
    const [c, d] = twins(() => convNet());
    const oc = tf.train.momentum(0.1, 0.9);
    const od = tf.train.momentum(0.1, 0.9);
    tf.dispose([createGenericTrainStep(c, oc).run(x, y), createGenericTrainStep(d, od).run(x, y)]);
    tf.dispose([createFusedTrainStep(c, oc).run(x, y), createGenericTrainStep(d, od).run(x, y)]);
    c.getWeights().forEach((w, i) => expect(maxAbsDiff(w, d.getWeights()[i])).to.be.below(1e-4));
    expect(oc.iterations).to.equal(2);
    tf.dispose([x, y]);
  });

  it('predicts what model.predict predicts, without leaking', async () => {
    for (const m of [convNet(), convNet({ softmax: false }), flatNet()]) {
      const shape = m.inputs[0].shape.slice(1) as number[];
      const x = tf.randomUniform([3, ...shape], -1, 1, 'float32', 2) as tf.Tensor4D;
      const fg = new FusedGradients(m);
      const want = m.predict(x) as tf.Tensor;
      const got = fg.predict(x);
      expect(maxAbsDiff(got, want)).to.be.below(1e-5);
      tf.dispose([want, got]);
      await expectNoTensorLeak(() => { fg.predict(x).dispose(); });
      x.dispose();
    }
  });

  it('keeps each convolution filter as a constant in predict, never another layer\'s or an outdated one', async function () {
    // Two convolutions with the same attributes share one cached eager kernel unless their filters get their own
    // ids: a kept filter would then be applied in the wrong layer, or after training had replaced it.
    const build = () => tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [9, 9, 4], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 3 }),
    ] });
    const m = build();
    const other = build(); // a second model with the same shapes: the same kernel attributes again
    if (k.constantFilterId(m.weights[0].read()) === undefined) this.skip(); // engine without patch 3
    const x = tf.randomUniform([2, 9, 9, 4], -1, 1, 'float32', 5) as tf.Tensor4D;
    const fg = new FusedGradients(m);
    const fgOther = new FusedGradients(other);
    const replaceWeights = (model: tf.LayersModel, seed: number) => {
      const values = model.weights.map((w, i) => tf.randomUniform(w.shape, -1, 1, 'float32', seed + i));
      model.setWeights(values);
      tf.dispose(values);
    };
    const check = (model: tf.LayersModel, f: FusedGradients) => {
      const want = model.predict(x) as tf.Tensor; // tfjs-layers: the filters as they are now, never kept
      const got = f.predict(x);
      expect(maxAbsDiff(got, want)).to.be.below(1e-5);
      tf.dispose([want, got]);
    };
    check(m, fg);
    check(other, fgOther);
    check(m, fg);
    // new weights (as after a training step or a checkpoint load): the kept copies of the old filters must not be used,
    // and they are dropped (every kept filter is; the live ones are kept again at their next use)
    const releases = k.constantFilterStats().releases;
    replaceWeights(m, 20);
    check(m, fg);
    expect(k.constantFilterStats()).to.deep.equal({ kept: 2, releases: releases + 1 });
    check(other, fgOther);
    expect(k.constantFilterStats()).to.deep.equal({ kept: 4, releases: releases + 1 });
    // a disposed model's kept filters go when new ones are kept
    other.dispose();
    const third = build();
    check(third, new FusedGradients(third));
    expect(k.constantFilterStats()).to.deep.equal({ kept: 2, releases: releases + 2 });
    third.dispose();
    // GAPCAM_CONSTANT_FILTERS=0: nothing new is kept, and the outputs stay the same
    process.env.GAPCAM_CONSTANT_FILTERS = '0';
    try {
      replaceWeights(m, 30);
      check(m, fg);
      expect(k.constantFilterStats()).to.deep.equal({ kept: 2, releases: releases + 2 });
    } finally {
      delete process.env.GAPCAM_CONSTANT_FILTERS;
    }
    await expectNoTensorLeak(() => {
      replaceWeights(m, 40);
      check(m, fg);
    });
    x.dispose();
  });

  it('splits a batch whose maps exceed the budget into slices for the first layers, with the same outputs', async () => {
    for (const m of [convNet(), flatNet()]) {
      const shape = m.inputs[0].shape.slice(1) as number[];
      const x = tf.randomUniform([7, ...shape], -1, 1, 'float32', 3) as tf.Tensor4D;
      const whole = new FusedGradients(m);
      // c1's output is 12·12·4 floats = 2304 bytes per image: a 1000-byte budget splits into 2-image slices.
      const sliced = new FusedGradients(m, { splitBudgets: { mapBytes: 1000 } });
      const want = whole.predict(x);
      const got = sliced.predict(x);
      expect(got.shape).to.deep.equal(want.shape);
      expect(maxAbsDiff(got, want)).to.be.below(1e-6);
      tf.dispose([want, got]);
      await expectNoTensorLeak(() => { sliced.predict(x).dispose(); });
      x.dispose();
    }
  });

  it('accumulates gradients over slices of a large batch: the loss, gradients and update of one pass', async () => {
    const [a, b] = twins(() => convNet());
    const x = tf.randomUniform([5, 12, 12, 3], -1, 1, 'float32', 11) as tf.Tensor4D;
    const y = tf.tensor1d([0, 2, 1, 1, 0], 'int32');
    // ~5 kB of activations per image: an 8000-byte budget gives slices of 2, 2 and 1 images.
    const small = { splitBudgets: { activationBytes: 8000, minSliceFlops: 0 } };
    const one = new FusedGradients(a).gradients(x, y);
    const sliced = new FusedGradients(a, small).gradients(x, y);
    expect(Math.abs(sliced.loss.dataSync()[0] - one.loss.dataSync()[0])).to.be.below(1e-6);
    expect(sliced.correct.dataSync()[0]).to.equal(one.correct.dataSync()[0]);
    expect(Object.keys(sliced.grads)).to.deep.equal(Object.keys(one.grads));
    for (const name of Object.keys(one.grads)) expect(maxAbsDiff(sliced.grads[name], one.grads[name]), name).to.be.below(1e-6);
    tf.dispose([one.loss, one.correct, one.grads, sliced.loss, sliced.correct, sliced.grads]);
    // The per-layer momentum update (onGradients) and a gradient hook (reduceGradient, as the all-reduce) see the
    // whole batch's gradient once per layer.
    const seen: string[] = [];
    const hooked = new FusedGradients(a, small).gradients(x, y, { reduceGradient: (g) => { seen.push(g.shape.join('x')); return tf.clone(g); } });
    expect(seen.length).to.equal(a.trainableWeights.length);
    tf.dispose([hooked.loss, hooked.correct, hooked.grads]);
    const sa = createFusedTrainStep(a, tf.train.momentum(0.1, 0.9));
    const sb = createFusedTrainStep(b, tf.train.momentum(0.1, 0.9), small);
    for (let i = 0; i < 2; i++) tf.dispose([sa.run(x, y), sb.run(x, y)]);
    a.getWeights().forEach((w, i) => expect(maxAbsDiff(w, b.getWeights()[i])).to.be.below(1e-5));
    await expectNoTensorLeak(() => { sb.run(x, y).dispose(); });
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

  it('gives tf.variableGrads\' gradients for a darknet-style chain with frozen BN (training: false) and a variable subset', () => {
    const input = tf.input({ shape: [9, 9, 3] });
    let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, name: 'd1' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization({ name: 'bn1', movingMeanInitializer: tf.initializers.randomUniform({ minval: -0.2, maxval: 0.2, seed: 4 }),
      movingVarianceInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 2, seed: 5 }),
      gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 6 }) }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.leakyReLU({ alpha: 0.1, name: 'lk1' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'mp' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters: 5, kernelSize: 1, padding: 'same', name: 'd2' }).apply(x) as tf.SymbolicTensor;
    const out = tf.layers.globalAveragePooling2d({ name: 'g' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    expect(fusedStepUnsupported(model)).to.equal(undefined);
    const images = tf.randomUniform([3, 9, 9, 3], -1, 1, 'float32', 9) as tf.Tensor4D;
    const labels = tf.tensor1d([4, 0, 2], 'int32');
    const all = model.trainableWeights.map((v) => v.read() as tf.Variable);
    const fused = new FusedGradients(model);
    for (const vars of [all, all.filter((v) => !v.name.startsWith('d1'))]) {
      const ref = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 5), model.apply(images, { training: false }) as tf.Tensor) as tf.Scalar, vars);
      const got = fused.gradients(images, labels, { training: false, variables: vars });
      expect(Object.keys(got.grads)).to.deep.equal(vars.map((v) => v.name));
      expect(Math.abs(got.loss.dataSync()[0] - ref.value.dataSync()[0])).to.be.below(1e-5);
      for (const v of vars) expect(maxAbsDiff(got.grads[v.name], ref.grads[v.name]), v.name).to.be.below(1e-5);
      const logits = model.predict(images) as tf.Tensor;
      const want = tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'float32')).dataSync()[0];
      expect(got.correct.dataSync()[0]).to.equal(want);
      tf.dispose([ref.value, ref.grads, got.loss, got.grads, got.correct, logits]);
    }
    tf.dispose([images, labels]);
  });

  it('in training mode, BatchNormalization uses the batch statistics: the gradients, loss and moving statistics of tfjs-layers, and a batch is never split', () => {
    const build = () => {
      const input = tf.input({ shape: [8, 8, 3] });
      let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, name: 'c1',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
      x = tf.layers.batchNormalization({ name: 'bn1', momentum: 0.9, epsilon: 1e-3,
        gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: 6 }),
        betaInitializer: tf.initializers.randomUniform({ minval: -0.3, maxval: 0.3, seed: 7 }),
        movingVarianceInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 2, seed: 5 }) }).apply(x) as tf.SymbolicTensor;
      x = tf.layers.reLU({ name: 'r1' }).apply(x) as tf.SymbolicTensor;
      x = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'c2', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(x) as tf.SymbolicTensor;
      x = tf.layers.batchNormalization({ name: 'bn2' }).apply(x) as tf.SymbolicTensor;
      const out = tf.layers.globalAveragePooling2d({ name: 'g' }).apply(x) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: out });
    };
    expect(fusedStepUnsupported(build())).to.equal(undefined);
    const images = tf.randomUniform([6, 8, 8, 3], -1, 2, 'float32', 9) as tf.Tensor4D;
    const labels = tf.tensor1d([4, 0, 2, 1, 3, 0], 'int32');
    // tiny split budgets: a batch without batch norm would run in slices here
    for (const splitBudgets of [undefined, { activationBytes: 1, minSliceFlops: 0 }]) {
      const [ref, mine] = twins(build);
      const vars = ref.trainableWeights.map((v) => v.read() as tf.Variable);
      const want = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(tf.oneHot(labels, 5), ref.apply(images, { training: true }) as tf.Tensor) as tf.Scalar, vars);
      const got = new FusedGradients(mine, { splitBudgets }).gradients(images, labels, { training: true });
      expect(Math.abs(got.loss.dataSync()[0] - want.value.dataSync()[0])).to.be.below(1e-5);
      const mineVars = mine.trainableWeights.map((v) => v.read() as tf.Variable);
      vars.forEach((v, i) => expect(maxAbsDiff(got.grads[mineVars[i].name], want.grads[v.name]), v.name).to.be.below(1e-5));
      // the moving statistics moved, the same way in both
      const moving = (m: tf.LayersModel) => m.weights.filter((w) => /moving/.test(w.name)).map((w) => w.read());
      const [a, b, initial] = [moving(ref), moving(mine), moving(build())];
      expect(a.length).to.equal(4);
      a.forEach((t, i) => {
        expect(maxAbsDiff(t, b[i]), `moving ${i}`).to.be.below(1e-6);
        expect(maxAbsDiff(t, initial[i]), `moving ${i} changed`).to.be.above(1e-4);
      });
      tf.dispose([want.value, want.grads, got.loss, got.grads, got.correct]);
    }
    tf.dispose([images, labels]);
  });

  it('a training step with batch norm does not leak tensors', async () => {
    const model = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same' }),
      tf.layers.batchNormalization(),
      tf.layers.reLU(),
      tf.layers.globalAveragePooling2d({}),
    ] });
    const step = createFusedTrainStep(model, tf.train.adam(0.01));
    const x = tf.randomUniform([4, 6, 6, 2], -1, 1, 'float32', 3) as tf.Tensor4D;
    const y = tf.tensor1d([0, 2, 1, 0], 'int32');
    await expectNoTensorLeak(() => { step.run(x, y).dispose(); }, 4);
    tf.dispose([x, y]);
  });

  it('uses oneDNN max pooling and conv+bias kernels on the native engine (and matches the portable ops)', function () {
    if (tf.getBackend() !== 'tensorflow') this.skip();
    const m = convNet();
    const step = createFusedTrainStep(m, tf.train.sgd(0.01));
    const x = tf.randomUniform([1, 12, 12, 3]) as tf.Tensor4D;
    const y = tf.tensor1d([1], 'int32');
    step.run(x, y).dispose();
    tf.dispose([x, y]);
    // The probes compare each kernel with the portable op first; they exist in every x86 TensorFlow 2.x build. The
    // fused conv + bias + ReLU needs list attributes, which gapcam's engine build passes (scripts/setup-engine.mjs).
    const patched = typeof (tf.backend() as unknown as { binding: Record<string, unknown> }).binding.releaseLibraryPages === 'function';
    expect(k.oneDnnKernels()).to.deep.equal({ _MklNativeFusedConv2D: patched, _MklNativeConv2DWithBias: true, _MklNativeMaxPool: true,
      _MklNativeConv2DBackprop: true });
  });

  it('chooses the fused path when every layer is supported, else the generic one with the reason', () => {
    const m = convNet();
    expect(createTrainStep(m, tf.train.sgd(0.1)).kind).to.equal('fused-sequential');
    const input = tf.input({ shape: [4, 4, 2] });
    const dw = tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3, padding: 'same' }).apply(input) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2 }).apply(tf.layers.globalAveragePooling2d({}).apply(dw)) as tf.SymbolicTensor;
    const other = tf.model({ inputs: input, outputs: out });
    expect(fusedStepUnsupported(other)).to.match(/'dw' \(DepthwiseConv2D\)/);
    const step = createTrainStep(other, tf.train.sgd(0.1));
    expect(step.kind).to.equal('generic');
    expect(step.reason).to.match(/DepthwiseConv2D/);
  });
});
