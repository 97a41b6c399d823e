// `gapcam models`: every registered backbone listed with its parameters (checked against Keras' published counts),
// default cut, CAM resolution at 224, preprocessing and weight source; the Keras families for model files.
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { listBackbones, formatBackboneListing } from '../../src/models/listing.js';
import { BACKBONE_NAMES } from '../../src/models/registry.js';

describe('models: gapcam models (the backbone listing)', function () {
  this.timeout(120_000);
  before(useEngine);

  it('lists every registered backbone with the facts a CAM user needs', async () => {
    const rows = await listBackbones();
    expect(rows.map((r) => r.name)).to.deep.equal(BACKBONE_NAMES);
    const vgg16 = rows.find((r) => r.name === 'vgg16')!;
    // keras.applications.VGG16(include_top=False).count_params() == 14,714,688; VGG19: 20,024,384
    expect(vgg16).to.deep.include({ params: 14_714_688, cutLayer: 'block5_conv3', featureChannels: 512, camAt224: [14, 14], preprocessing: 'caffe' });
    expect(vgg16.weightSource).to.contain('imagenet');
    expect(rows.find((r) => r.name === 'vgg19')!.params).to.equal(20_024_384);
    const dk = rows.find((r) => r.name === 'darknet-tiny')!;
    expect(dk.params).to.equal(undefined);
    expect(dk.camAt224).to.deep.equal([14, 14]);
    const text = formatBackboneListing(rows);
    expect(text).to.match(/^vgg16\s+14,714,688\s+block5_conv3 \(512\)\s+14×14\s+caffe/m);
    expect(text).to.match(/MobileNetV2\s+tf\s+cut out_relu/);
  });
});
