import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import seedrandom from 'seedrandom';
import { useEngine, darknetTinyDir, expectNoTensorLeak } from '../helpers.js';
import { toGap, truncateModel, asCamModel, GAP_LAYER_NAMES } from '../../src/models/surgery.js';
import { buildVgg } from '../../src/models/backbones/vgg.js';
import { loadLayersModelFromDir } from '../../src/models/layers-io.js';
import { UserError } from '../../src/errors.js';

function weightBits(layer: tf.layers.Layer): Uint32Array[] {
  return layer.getWeights().map((w) => new Uint32Array(new Float32Array(w.dataSync()).buffer));
}

function expectKeptWeightsIdentical(src: tf.LayersModel, dst: tf.LayersModel, upTo: string): number {
  let n = 0;
  for (const layer of src.layers) {
    const there = dst.getLayer(layer.name);
    const a = weightBits(layer);
    const b = weightBits(there);
    expect(b.length, layer.name).to.equal(a.length);
    a.forEach((arr, i) => expect(Array.from(b[i]), `${layer.name} weight ${i}`).to.deep.equal(Array.from(arr)));
    n += a.length;
    if (layer.name === upTo) break;
  }
  return n;
}

describe('models/surgery', () => {
  before(useEngine);

  it('VGG → GAP: keeps every kept weight bit for bit, names the head, logits are pre-softmax', () => {
    const vgg = buildVgg('vgg-tiny', { includeTop: true, inputShape: [32, 32, 3], classes: 10, seed: 7 });
    const cam = toGap(vgg, { classes: 3, classNames: ['a', 'b', 'c'], convFilters: 16, seed: 1 });
    expect(cam.meta).to.include({ headKind: 'gap-dense', featureLayer: 'gap_conv', poolingLayer: 'gap_pool', classifierLayer: 'gap_classifier', outputIsSoftmax: true, backbone: 'vgg-tiny', preprocessing: 'unit' });
    expect(cam.meta.inputSize).to.deep.equal([32, 32]);
    const names = cam.model.layers.map((l) => l.name);
    expect(names).to.deep.equal(['input_1', 'block1_conv1', 'block1_pool', 'block2_conv1', 'block2_pool', 'block3_conv1', 'block3_conv2', 'block3_pool', 'block4_conv1', 'block4_conv2', 'gap_conv', 'gap_pool', 'gap_classifier', 'gap_softmax']);
    expect(cam.model.getLayer('gap_conv').outputShape).to.deep.equal([null, 4, 4, 16]);
    expect(expectKeptWeightsIdentical(vgg, cam.model, 'block4_conv2')).to.equal(12);
    // the copy is independent: disposing the source leaves the new model working with the same values
    const before = weightBits(cam.model.getLayer('block1_conv1'));
    vgg.dispose();
    expect(weightBits(cam.model.getLayer('block1_conv1')).map((a) => Array.from(a))).to.deep.equal(before.map((a) => Array.from(a)));
    // S_c = Σ_k w_k^c mean(f_k) + b_c, and the output is softmax(S)
    tf.tidy(() => {
      const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 5);
      const [f, logits, probs] = tf.model({ inputs: cam.model.inputs, outputs: ['gap_conv', 'gap_classifier', 'gap_softmax'].map((n) => cam.model.getLayer(n).output as tf.SymbolicTensor) })
        .predict(x) as tf.Tensor[];
      const [w, b] = cam.model.getLayer('gap_classifier').getWeights();
      const ref = tf.add(tf.matMul(tf.mean(f, [1, 2]), w), b);
      expect(tf.max(tf.abs(tf.sub(ref, logits))).dataSync()[0]).to.be.lessThan(1e-5);
      expect(tf.max(tf.abs(tf.sub(tf.softmax(logits), probs))).dataSync()[0]).to.be.lessThan(1e-6);
    });
    // a surgery result is CAM-ready as it stands
    const again = asCamModel(cam.model, { classNames: ['a', 'b', 'c'] });
    expect(again.meta).to.include({ headKind: 'gap-dense', featureLayer: 'gap_conv', classifierLayer: 'gap_classifier', poolingLayer: 'gap_pool', outputIsSoftmax: true });
    cam.model.dispose();
  });

  it('re-heads a gapcam model: new names never clash with kept ones, kept head weights stay', () => {
    const vgg = buildVgg('vgg-tiny', { includeTop: false, inputShape: [32, 32, 3], seed: 3 });
    const first = toGap(vgg, { classes: 3, convFilters: 8, seed: 1 });
    vgg.dispose();
    const swap = toGap(first.model, { cutAt: 'gap_conv', convFilters: 0, classes: 5 });
    expect(swap.meta).to.include({ featureLayer: 'gap_conv', poolingLayer: 'gap_pool', classifierLayer: 'gap_classifier' });
    expect(expectKeptWeightsIdentical(first.model, swap.model, 'gap_conv')).to.equal(14);
    expect(swap.model.outputs[0].shape).to.deep.equal([null, 5]);
    const stacked = toGap(first.model, { cutAt: 'gap_conv', convFilters: 4, classes: 2 });
    expect(stacked.meta.featureLayer).to.equal('gap_conv_1');
    expect(stacked.model.layers.slice(-4).map((l) => l.name)).to.deep.equal(['gap_conv_1', 'gap_pool', 'gap_classifier', 'gap_softmax']);
    [first.model, swap.model, stacked.model].forEach((m) => m.dispose());
  });

  it('defaults: VGG16 cut at block5_conv3, 1024 3×3 filters, 14×14 map; dropout layer when asked', () => {
    const vgg = buildVgg('vgg16', { includeTop: false, inputShape: [224, 224, 3] });
    const cam = toGap(vgg, { classes: 2, dropout: 0.5 });
    const conv = cam.model.getLayer('gap_conv');
    expect(conv.outputShape).to.deep.equal([null, 14, 14, 1024]);
    expect((conv.getConfig() as { kernelSize: number[] }).kernelSize).to.deep.equal([3, 3]);
    expect((conv.getConfig() as { activation: string }).activation).to.equal('relu');
    expect(cam.model.layers.map((l) => l.name)).to.not.include('block5_pool');
    expect(cam.model.getLayer(GAP_LAYER_NAMES.dropout).getClassName()).to.equal('Dropout');
    expect(cam.meta.preprocessing).to.equal('caffe');
    vgg.dispose();
    cam.model.dispose();
  });

  it('darknet-tiny: cut at leaky_re_lu_15 (14×14×128) and a new 2-class GAP head', async () => {
    const dn = await loadLayersModelFromDir(darknetTinyDir);
    const cam = toGap(dn, { cutAt: 'leaky_re_lu_15', classes: 2, classNames: ['kangaroo', 'raccoon'], convFilters: 256, seed: 3 });
    expect(cam.model.getLayer('leaky_re_lu_15').outputShape).to.deep.equal([null, 14, 14, 128]);
    expect(cam.model.getLayer('gap_conv').outputShape).to.deep.equal([null, 14, 14, 256]);
    expect(cam.model.outputs[0].shape).to.deep.equal([null, 2]);
    expect(cam.model.layers.map((l) => l.name)).to.not.include('conv2d_16');
    expect(expectKeptWeightsIdentical(dn, cam.model, 'leaky_re_lu_15')).to.equal(15 + 15 * 4); // 15 convs (no bias) + 15 BNs
    // the kept body computes exactly what the original computes at that layer
    tf.tidy(() => {
      const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 9);
      const a = tf.model({ inputs: dn.inputs, outputs: dn.getLayer('leaky_re_lu_15').output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
      const b = tf.model({ inputs: cam.model.inputs, outputs: cam.model.getLayer('leaky_re_lu_15').output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
      expect(Array.from(b.dataSync())).to.deep.equal(Array.from(a.dataSync()));
    });
    // and the unmodified darknet-tiny is recognised as a conv-gap CAM model
    expect(asCamModel(dn).meta).to.include({ headKind: 'conv-gap', featureLayer: 'conv2d_16', outputIsSoftmax: false });
    dn.dispose();
    cam.model.dispose();
  });

  it('the new model trains: loss falls on a toy left/right problem', async () => {
    const rng = seedrandom('toy');
    const n = 48;
    const xs = new Float32Array(n * 32 * 32 * 3);
    const ys = new Float32Array(n * 2);
    for (let i = 0; i < n; i++) {
      const label = i % 2;
      ys[i * 2 + label] = 1;
      const cx = label === 0 ? 4 + Math.floor(rng() * 8) : 20 + Math.floor(rng() * 8);
      const cy = 4 + Math.floor(rng() * 24);
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) {
        const on = Math.abs(x - cx) <= 3 && Math.abs(y - cy) <= 3;
        for (let c = 0; c < 3; c++) xs[((i * 32 + y) * 32 + x) * 3 + c] = (on ? 0.9 : 0.1) + 0.05 * rng();
      }
    }
    const vgg = buildVgg('vgg-tiny', { includeTop: false, inputShape: [32, 32, 3], seed: 11 });
    const cam = toGap(vgg, { classes: 2, convFilters: 32, seed: 12 });
    vgg.dispose();
    cam.model.compile({ optimizer: tf.train.adam(3e-3), loss: 'categoricalCrossentropy' });
    const x = tf.tensor4d(xs, [n, 32, 32, 3]);
    const y = tf.tensor2d(ys, [n, 2]);
    const hist = await cam.model.fit(x, y, { epochs: 12, batchSize: 16, shuffle: false, verbose: 0 });
    const loss = hist.history.loss as number[];
    expect(loss[loss.length - 1]).to.be.lessThan(loss[0] * 0.7);
    tf.dispose([x, y]);
    cam.model.dispose();
  });

  it('rejects unknown and non-spatial cut layers with one line', () => {
    const vgg = buildVgg('vgg-tiny', { includeTop: true, inputShape: [32, 32, 3] });
    expect(() => toGap(vgg, { cutAt: 'block9_conv1', classes: 2 })).to.throw(UserError, /no layer 'block9_conv1'.*block4_conv2/);
    expect(() => toGap(vgg, { cutAt: 'fc1', classes: 2 })).to.throw(UserError, /expected a 4-D feature map/);
    expect(() => toGap(vgg, { classes: 0 })).to.throw(UserError, /--classes/);
    const m = tf.model({ inputs: vgg.inputs, outputs: vgg.getLayer('block2_pool').output as tf.SymbolicTensor, name: 'custom' });
    expect(() => toGap(m, { classes: 2 })).to.throw(UserError, /not a registered backbone/);
    vgg.dispose();
  });

  it('does not leak tensors', async () => {
    const vgg = buildVgg('vgg-tiny', { includeTop: false, inputShape: [32, 32, 3] });
    await expectNoTensorLeak(() => {
      const cam = toGap(vgg, { classes: 2, convFilters: 8 });
      cam.model.dispose();
      truncateModel(vgg, 'block3_conv1').dispose();
    });
    vgg.dispose();
  });
});
