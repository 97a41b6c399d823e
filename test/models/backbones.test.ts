import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, darknetTinyDir } from '../helpers.js';
import { BACKBONES, BACKBONE_NAMES, buildBackbone, getBackbone, type BackboneName } from '../../src/models/registry.js';
import { buildVgg, vggLayerNames, VGG_ARCHS } from '../../src/models/backbones/vgg.js';
import { UserError } from '../../src/errors.js';

/** Per-backbone build options for the contract test: small inputs keep it fast, folder-backed ones get their folder. */
const contractOptions: Record<BackboneName, { inputShape?: [number, number, number]; weights?: string }> = {
  vgg11: { inputShape: [64, 64, 3] },
  vgg13: { inputShape: [64, 64, 3] },
  vgg16: { inputShape: [64, 64, 3] },
  vgg19: { inputShape: [64, 64, 3] },
  'vgg-tiny': {},
  'vgg-tiny-bn': {},
  'darknet-tiny': { weights: darknetTinyDir },
};

describe('models/backbones', () => {
  before(useEngine);

  describe('contract over every registered backbone', () => {
    for (const name of BACKBONE_NAMES) {
      it(`${name}: builds, has its cut layer, gives the expected feature map`, async () => {
        const spec = BACKBONES[name];
        const opts = contractOptions[name];
        const model = await buildBackbone(name, { includeTop: false, ...opts });
        const input = opts.inputShape ?? spec.defaultInputShape;
        expect(model.inputs[0].shape.slice(1)).to.deep.equal(input);
        const cut = model.getLayer(spec.defaultCutLayer);
        expect(cut.outputShape).to.deep.equal([null, input[0] / spec.featureStride, input[1] / spec.featureStride, spec.featureChannels]);
        expect(['caffe', 'torch', 'unit']).to.include(spec.preprocessing);
        // it runs
        const y = tf.tidy(() => (model.predict(tf.zeros([1, ...input])) as tf.Tensor).shape);
        expect(y[0]).to.equal(1);
        model.dispose();
      });
    }
  });

  it('VGG16 has exactly Keras parameter counts (138,357,544 with top; 14,714,688 without)', async () => {
    const top = buildVgg('vgg16', { includeTop: true });
    expect(top.countParams()).to.equal(138_357_544);
    top.dispose();
    const notop = buildVgg('vgg16', { includeTop: false });
    expect(notop.countParams()).to.equal(14_714_688);
    notop.dispose();
  });

  it('VGG11/13/19 without top have the torchvision/Keras feature-extractor counts', () => {
    // Σ over convs of 9·in·out + out (independently: the published counts of the VGG feature extractors).
    const expected = { vgg11: 9_220_480, vgg13: 9_404_992, vgg19: 20_024_384 } as const;
    for (const [name, n] of Object.entries(expected)) {
      const m = buildVgg(name as 'vgg11', { includeTop: false });
      expect(m.countParams(), name).to.equal(n);
      m.dispose();
    }
  });

  it('uses Keras layer names', () => {
    const m = buildVgg('vgg16', { includeTop: true, inputShape: [32, 32, 3], classes: 5 });
    expect(m.layers.map((l) => l.name)).to.deep.equal(['input_1', ...vggLayerNames(VGG_ARCHS.vgg16.cfg), 'flatten', 'fc1', 'fc2', 'predictions']);
    expect(vggLayerNames(VGG_ARCHS.vgg16.cfg).slice(0, 4)).to.deep.equal(['block1_conv1', 'block1_conv2', 'block1_pool', 'block2_conv1']);
    expect(m.outputs[0].shape).to.deep.equal([null, 5]);
    m.dispose();
    expect(getBackbone('vgg16').defaultCutLayer).to.equal('block5_conv3');
    expect(getBackbone('vgg19').defaultCutLayer).to.equal('block5_conv4');
    expect(getBackbone('vgg-tiny').defaultCutLayer).to.equal('block4_conv2');
  });

  it('pooling option adds the Keras global pooling layer', () => {
    const m = buildVgg('vgg-tiny', { includeTop: false, inputShape: [32, 32, 3], pooling: 'avg' });
    expect(m.outputs[0].shape).to.deep.equal([null, 128]);
    m.dispose();
  });

  it('rejects bad options with one-line UserErrors', async () => {
    expect(() => buildVgg('vgg16', { inputShape: [16, 16, 3] })).to.throw(UserError, /too small/);
    expect(() => getBackbone('resnet50')).to.throw(UserError, /expected one of vgg11/);
    let err: unknown;
    await buildBackbone('darknet-tiny').catch((e) => (err = e));
    expect(err).to.be.instanceOf(UserError);
    await buildBackbone('vgg11', { weights: 'imagenet', includeTop: false }).catch((e) => (err = e));
    expect((err as Error).message).to.match(/vgg16 and vgg19 only/);
  });

  it('darknet-tiny keeps its top by default and can be rebuilt at another input size', async () => {
    const full = await buildBackbone('darknet-tiny', { weights: darknetTinyDir });
    expect(full.outputs[0].shape).to.deep.equal([null, 1000]);
    full.dispose();
    const small = await buildBackbone('darknet-tiny', { weights: darknetTinyDir, includeTop: false, inputShape: [96, 96, 3] });
    expect(small.outputs[0].shape).to.deep.equal([null, 6, 6, 128]);
    small.dispose();
  });
});
