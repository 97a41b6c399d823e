import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { useEngine, makeTempDir, darknetTinyDir, expectNoTensorLeak, expectUserError } from '../helpers.js';
import { loadLayersModelFromDir, saveLayersModelToDir } from '../../src/models/layers-io.js';
import { loadCamModel, saveCamModel } from '../../src/models/meta.js';
import { loadModelRef } from '../../src/models/refs.js';
import { asCamModel, detectCamHead } from '../../src/models/head.js';
import { UserError } from '../../src/errors.js';

function tinyGapDense(seed = 1): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: tf.initializers.glorotUniform({ seed }) }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dense({ units: 3, name: 'cls', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), biasInitializer: tf.initializers.randomNormal({ seed: seed + 2 }) }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'softmax', name: 'sm' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: x, name: 'tiny' });
}

describe('models/io', () => {
  before(useEngine);

  it('loads darknet-tiny as a conv-gap CAM model with its class names', async () => {
    const cam = await loadCamModel(darknetTinyDir);
    expect(cam.meta.headKind).to.equal('conv-gap');
    expect(cam.meta.featureLayer).to.equal('conv2d_16');
    expect(cam.meta.poolingLayer).to.equal('global_average_pooling2d_1');
    expect(cam.meta.outputIsSoftmax).to.equal(false);
    expect(cam.meta.inputSize).to.deep.equal([224, 224]);
    expect(cam.meta.preprocessing).to.equal('unit');
    expect(cam.meta.classNames).to.have.length(1000);
    expect(cam.meta.classNames[215]).to.equal('wallaby');
    expect(cam.model.countParams()).to.be.greaterThan(1_000_000);
    cam.model.dispose();
  });

  it('save → load gives identical predictions and the meta back', async () => {
    const model = tinyGapDense();
    const cam = asCamModel(model, { classNames: ['a', 'b', 'c'], preprocessing: 'caffe', recipe: 'test' });
    expect(cam.meta.headKind).to.equal('gap-dense');
    expect(cam.meta.classifierLayer).to.equal('cls');
    expect(cam.meta.outputIsSoftmax).to.equal(true);
    const dir = path.join(makeTempDir(), 'm');
    await saveCamModel(dir, cam);
    expect(fs.existsSync(path.join(dir, 'model.json'))).to.equal(true);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    expect(json.format).to.equal('layers-model');
    expect(json.weightsManifest[0].paths[0]).to.equal('group1-shard1of1.bin');
    const back = await loadCamModel(dir);
    expect(back.meta).to.deep.equal(cam.meta);
    const x = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 3);
    const a = (model.predict(x) as tf.Tensor).dataSync();
    const b = (back.model.predict(x) as tf.Tensor).dataSync();
    expect(Array.from(b)).to.deep.equal(Array.from(a));
    await expectNoTensorLeak(async () => {
      const again = await loadCamModel(dir);
      again.model.dispose();
    });
    // saving again over the folder replaces it atomically
    await saveCamModel(dir, cam);
    expect(fs.readdirSync(path.dirname(dir))).to.deep.equal(['m']);
    tf.dispose([x]);
    model.dispose();
    back.model.dispose();
  });

  it('refuses weight paths that leave the model folder', async () => {
    const root = makeTempDir();
    const dir = path.join(root, 'm');
    await saveLayersModelToDir(dir, tinyGapDense());
    fs.copyFileSync(path.join(dir, 'group1-shard1of1.bin'), path.join(root, 'outside.bin'));
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    for (const bad of ['../outside.bin', path.join(root, 'outside.bin'), 'sub/../../outside.bin', 'file:///etc/passwd']) {
      json.weightsManifest[0].paths = [bad];
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      await expectUserError(loadLayersModelFromDir(dir), /weight path .* (absolute|outside)/);
    }
    fs.symlinkSync(path.join(root, 'outside.bin'), path.join(dir, 'link.bin'));
    json.weightsManifest[0].paths = ['link.bin'];
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    await expectUserError(loadLayersModelFromDir(dir), /link to a file outside/);
  });

  it('refuses a shard longer or shorter than its manifest, and NaN/Inf weights (named by layer), with one line', async () => {
    const dir = path.join(makeTempDir(), 'm');
    const model = tinyGapDense();
    await saveCamModel(dir, asCamModel(model, { classNames: ['a', 'b', 'c'] }));
    model.dispose();
    const shard = path.join(dir, 'group1-shard1of1.bin');
    const good = fs.readFileSync(shard);
    expect(good.byteLength).to.equal((3 * 3 * 3 * 4 + 4 + 4 * 3 + 3) * 4); // c1 kernel + bias, cls kernel + bias
    fs.writeFileSync(shard, Buffer.concat([good, Buffer.alloc(4)]));
    await expectUserError(loadCamModel(dir), /weight files group1-shard1of1\.bin hold 512 bytes but the manifest's weights take 508; expected an exact match/);
    fs.writeFileSync(shard, good.subarray(0, 500));
    await expectUserError(loadCamModel(dir), /hold 500 bytes but the manifest's weights take 508/);
    const poisoned = (floatIndex: number, value: number) => {
      const b = Buffer.from(good);
      b.writeFloatLE(value, floatIndex * 4);
      fs.writeFileSync(shard, b);
    };
    poisoned(108 + 4 + 5, NaN); // cls/kernel[5]
    await expectUserError(loadCamModel(dir), /weight 'cls\/kernel' of layer 'cls' holds NaN \(element 5 of 12\); expected finite numbers/);
    poisoned(108 + 1, -Infinity); // c1/bias[1]
    await expectUserError(loadModelRef(dir), /weight 'c1\/bias' of layer 'c1' holds -Infinity \(element 1 of 4\)/);
    fs.writeFileSync(shard, good);
    (await loadCamModel(dir)).model.dispose();
  });

  it('loadModelRef resolves a checkpoint run folder to best/ (else last/)', async () => {
    const root = makeTempDir();
    const model = tinyGapDense();
    const cam = asCamModel(model, { classNames: ['a', 'b', 'c'] });
    await saveCamModel(path.join(root, 'run1', 'last'), cam);
    let ref = await loadModelRef(path.join(root, 'run1'));
    expect(ref.kind).to.equal('checkpoint');
    expect(ref.source).to.equal(path.join(root, 'run1', 'last'));
    ref.model.dispose();
    await saveCamModel(path.join(root, 'run1', 'best'), cam);
    ref = await loadModelRef('run1', { checkpointRoot: root });
    expect(ref.source).to.equal(path.join(root, 'run1', 'best'));
    expect(ref.meta?.classNames).to.deep.equal(['a', 'b', 'c']);
    ref.model.dispose();
    await expectUserError(loadModelRef(path.join(root, 'nope')), /not a model folder/);
    model.dispose();
  });

  it('says why a model is not CAM-ready', () => {
    const input = tf.input({ shape: [4, 4, 1] });
    const f = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const d = tf.layers.dense({ units: 2, name: 'd' }).apply(f) as tf.SymbolicTensor;
    const m = tf.model({ inputs: input, outputs: d });
    expect(detectCamHead(m)).to.match(/fed by .*Flatten/);
    expect(() => asCamModel(m)).to.throw(UserError, /not CAM-ready/);
    m.dispose();
  });
});
