// Bring your own model: residual and depthwise-separable nets with BatchNormalization, built in tfjs, saved as a
// legacy Keras .h5 and as a Keras 3 .keras archive, load back bit-identically; unsupported layer classes are one
// line; Keras applications are recognised (preprocessing, cut layer); models without meta.json warn once.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { unzipSync, zipSync, strFromU8, strToU8 } from 'fflate';
import { useEngine, makeTempDir } from '../helpers.js';
import { saveKerasArchive, readKerasArchive } from '../../src/models/keras-archive.js';
import { loadKerasModel } from '../../src/models/keras-model.js';
import { loadModelRef } from '../../src/models/refs.js';
import { identifyKerasApplication, assumedPreprocessing } from '../../src/models/keras-apps.js';
import { toGap } from '../../src/models/surgery.js';
import { UserError } from '../../src/errors.js';
import { residualNet, depthwiseNet, mobileNetV2, saveAs } from './own-nets.js';

function outputsOf(m: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
}


describe('models: bring your own model (.h5, .keras)', function () {
  this.timeout(60_000);
  before(useEngine);
  let work: string;
  before(() => { work = makeTempDir(); });

  for (const [name, make] of [['residual', residualNet], ['depthwise-separable', depthwiseNet]] as const) {
    for (const ext of ['.h5', '.keras']) {
      it(`a ${name} net with BatchNorm saved as ${ext} loads back with the same layers and outputs`, async () => {
        const m = make();
        const file = path.join(work, `${name}${ext}`);
        await saveAs(m, file);
        const back = await loadKerasModel(file);
        expect(back.name).to.equal(m.name);
        expect(back.layers.map((l) => `${l.name}:${l.getClassName()}`)).to.deep.equal(m.layers.map((l) => `${l.name}:${l.getClassName()}`));
        const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 7);
        expect(Array.from(outputsOf(back, x))).to.deep.equal(Array.from(outputsOf(m, x)));
        // BN moving statistics travel too (inference mode uses them)
        const [mm, mv] = back.getLayer('stem_bn').getWeights().slice(2);
        const [om, ov] = m.getLayer('stem_bn').getWeights().slice(2);
        expect(Array.from(mm.dataSync())).to.deep.equal(Array.from(om.dataSync()));
        expect(Array.from(mv.dataSync())).to.deep.equal(Array.from(ov.dataSync()));
        x.dispose();
        m.dispose();
        back.dispose();
      });
    }
  }

  it('a .keras archive is a zip of metadata.json, config.json and a Keras 3 model.weights.h5', async () => {
    const m = depthwiseNet();
    const file = path.join(work, 'layout.keras');
    await saveKerasArchive(m, file);
    const entries = unzipSync(fs.readFileSync(file));
    expect(Object.keys(entries).sort()).to.deep.equal(['config.json', 'metadata.json', 'model.weights.h5']);
    const w = await readKerasArchive(file);
    expect(w.layout).to.equal('keras3');
    // Keras 3 keys: class in snake_case with a counter; the layer's own name recorded beside the weights
    expect(w.groupKeys?.get('depthwise_conv2d')).to.equal('dw_conv');
    expect(w.groupKeys?.get('separable_conv2d')).to.equal('sep_conv');
    expect(w.groupKeys?.get('batch_normalization_2')).to.equal('pw_bn');
    expect(w.layers.get('sep_conv')!.map((v) => v.shape)).to.deep.equal([[3, 3, 8, 1], [1, 1, 8, 8], [8]]);
    m.dispose();
  });

  it('a layer class tfjs cannot build is one line naming the class; a broken archive names what is missing', async () => {
    const m = residualNet();
    const file = path.join(work, 'custom.keras');
    await saveKerasArchive(m, file);
    const entries = unzipSync(fs.readFileSync(file));
    const cfg = JSON.parse(strFromU8(entries['config.json']));
    const layer = cfg.config.layers.find((l: { name: string }) => l.name === 'res_out');
    layer.class_name = 'MyFancyActivation';
    layer.module = 'my_package.layers';
    entries['config.json'] = strToU8(JSON.stringify(cfg));
    fs.writeFileSync(file, zipSync(entries));
    let err: Error | undefined;
    await loadKerasModel(file).catch((e: Error) => (err = e));
    expect(err).to.be.instanceOf(UserError);
    expect(err!.message).to.not.contain('\n');
    expect(err!.message).to.contain("layer 'res_out' is a MyFancyActivation");
    delete entries['model.weights.h5'];
    fs.writeFileSync(file, zipSync(entries));
    err = undefined;
    await loadKerasModel(file).catch((e: Error) => (err = e));
    expect(err).to.be.instanceOf(UserError);
    expect(err!.message).to.contain('holds no model.weights.h5');
    fs.writeFileSync(file, 'not a zip');
    err = undefined;
    await loadKerasModel(file).catch((e: Error) => (err = e));
    expect(err!.message).to.match(/not a zip archive/);
    m.dispose();
  });

  it('Keras applications are recognised by name or by their layers: preprocessing and cut layer', () => {
    const mnv2 = mobileNetV2(0.35, 32, 3);
    expect(identifyKerasApplication(mnv2)).to.include({ family: 'MobileNetV2', preprocessing: 'tf', cutLayer: 'out_relu' });
    const renamed = tf.model({ inputs: mnv2.inputs, outputs: mnv2.outputs, name: 'my_net' });
    expect(identifyKerasApplication(renamed)?.family).to.equal('MobileNetV2');
    const cam = toGap(renamed, { classes: 2, convFilters: 0 });
    expect(cam.meta).to.include({ featureLayer: 'out_relu', preprocessing: 'tf' });
    const res = residualNet();
    expect(identifyKerasApplication(res)).to.equal(undefined);
    const lines: string[] = [];
    expect(assumedPreprocessing(res, 'my/res.h5', (l) => lines.push(l))).to.equal('unit');
    expect(assumedPreprocessing(res, 'my/res.h5', (l) => lines.push(l))).to.equal('unit');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.contain("assuming preprocessing 'unit'");
    expect(assumedPreprocessing(mnv2, 'mnv2.keras', (l) => lines.push(l))).to.equal('tf');
    expect(lines).to.have.length(1);
    cam.model.dispose();
    mnv2.dispose();
    res.dispose();
  });

  it('loadModelRef reads .keras files: kind, detected head and the assumed preprocessing', async () => {
    const m = mobileNetV2(0.35, 32, 3);
    const file = path.join(work, 'mnv2.keras');
    await saveKerasArchive(m, file);
    const ref = await loadModelRef(file);
    expect(ref.kind).to.equal('keras');
    expect(ref.preprocessing).to.equal('tf');
    expect(ref.meta).to.include({ headKind: 'gap-dense', featureLayer: 'out_relu', classifierLayer: 'predictions', preprocessing: 'tf' });
    const given = await loadModelRef(file, { preprocessing: 'caffe' });
    expect(given.preprocessing).to.equal('caffe');
    for (const x of [m, ref.model, given.model]) x.dispose();
  });
});
