import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, expectNoTensorLeak } from '../helpers.js';
import { buildBackbone, getBackbone } from '../../src/models/registry.js';
import { VGG_ARCHS } from '../../src/models/backbones/vgg.js';

describe('models/vgg-tiny-bn', () => {
  before(useEngine);

  it('is conv (no bias) → BN (momentum 0.9) → ReLU, cut at the last ReLU, stride 4 (16×16 at 64×64)', async () => {
    const spec = getBackbone('vgg-tiny-bn');
    expect(spec.defaultCutLayer).to.equal('block3_conv3_relu');
    expect(spec.featureStride).to.equal(4);
    const m = await buildBackbone('vgg-tiny-bn', { includeTop: false, inputShape: [64, 64, 3] });
    expect(m.getLayer('block3_conv3_relu').outputShape).to.deep.equal([null, 16, 16, 128]);
    const conv = m.getLayer('block1_conv1');
    expect(conv.getConfig().useBias).to.equal(false);
    expect(m.getLayer('block1_conv1_bn').getConfig().momentum).to.equal(0.9);
    expect(m.layers.filter((l) => l.getClassName() === 'BatchNormalization')).to.have.length(VGG_ARCHS['vgg-tiny-bn'].cfg.filter((c) => c !== 'M').length);
    m.dispose();
  });

  it('moving statistics move by (1 − momentum) toward the batch statistics on a training-mode call inside variableGrads', async () => {
    const m = await buildBackbone('vgg-tiny-bn', { includeTop: false, inputShape: [16, 16, 3], seed: 3 });
    const bn = m.getLayer('block1_conv1_bn');
    const x = tf.randomUniform([4, 16, 16, 3], 0, 1, 'float32', 5);
    // The batch mean/variance of the conv output, computed independently through the conv layer alone.
    const { mean, variance } = tf.tidy(() => tf.moments(m.getLayer('block1_conv1').apply(x) as tf.Tensor, [0, 1, 2]));
    const [mm0, mv0] = bn.getWeights().slice(2).map((w) => w.arraySync() as number[]);
    const vars = m.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const { value, grads } = tf.variableGrads(() => tf.mean(m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
    tf.dispose([value, grads]);
    const [mm1, mv1] = bn.getWeights().slice(2).map((w) => w.arraySync() as number[]);
    const bm = mean.arraySync() as number[], bv = variance.arraySync() as number[];
    const n = 4 * 16 * 16;
    for (let c = 0; c < bm.length; c++) {
      expect(mm1[c]).to.be.closeTo(0.9 * mm0[c] + 0.1 * bm[c], 1e-4);
      // Keras/tfjs keep the unbiased variance (n / (n − 1)) in the moving average.
      expect(mv1[c]).to.be.closeTo(0.9 * mv0[c] + 0.1 * bv[c] * (n / (n - 1)), 1e-3);
    }
    // Inference does not touch them.
    tf.dispose(m.apply(x, { training: false }) as tf.Tensor);
    expect(bn.getWeights()[2].arraySync()).to.deep.equal(mm1);
    await expectNoTensorLeak(() => tf.dispose(m.apply(x, { training: false }) as tf.Tensor));
    tf.dispose([x, mean, variance]);
    m.dispose();
  });
});
