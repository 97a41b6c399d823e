import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { useEngine, makeTempDir } from '../helpers.js';
import { runCam, parseClassTokens, resolveClassToken, safeId } from '../../src/cam/service.js';
import { loadDataset } from '../../src/data/datasets.js';
import { readNpy } from '../../src/util/npy.js';
import { saveLayersModelToDir } from '../../src/models/layers-io.js';
import { main } from './cli-main.js';
import { writeTinyModel, writeImageFolder, writeVocFolder } from './fixtures.js';

describe('cam service (gapcam cam)', function () {
  let dir: string;
  let modelDir: string;
  let images: string;
  let voc: string;
  before(async () => {
    await useEngine();
    dir = makeTempDir('gapcam-cam-');
    modelDir = await writeTinyModel(dir);
    images = await writeImageFolder(dir, [[40, 30], [25, 50], [24, 24]]);
    voc = await writeVocFolder(dir, 8);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('parses class tokens and names', () => {
    const names = ['tabby cat', 'Egyptian_cat', 'crane', 'crane'];
    expect(resolveClassToken('egyptian cat', names)).to.equal(1);
    expect(resolveClassToken('Tabby_Cat', names)).to.equal(0);
    expect(resolveClassToken('3', names)).to.equal(3);
    expect(() => resolveClassToken('crane', names)).to.throw(/ambiguous.*ids 2, 3/);
    expect(() => resolveClassToken('dog', names)).to.throw(/--class dog: not a class of the model/);
    expect(() => resolveClassToken('9', names)).to.throw(/out of range 0..3/);
    expect(parseClassTokens(['top2,gt', '1'], names)).to.deep.equal([{ kind: 'top', k: 2 }, { kind: 'gt' }, { kind: 'id', id: 1 }]);
    expect(safeId('a/b c:d')).to.equal('a_b_c_d');
  });

  it('a folder, two methods, top-2: overlays at each image size, strips, raw .npy, gallery, cam.json', async () => {
    const out = path.join(dir, 'out-folder');
    const before = tf.memory().numTensors;
    const s = await runCam({ model: modelDir, images, methods: ['cam', 'gradcam'], classes: ['top2'], npy: 'raw', out, batchSize: 2 });
    expect(tf.memory().numTensors, 'no tensors left behind').to.equal(before);
    expect(s.images).to.equal(3);
    expect(s.methods.map((m) => [m.name, m.layer, m.layerChoice])).to.deep.equal([['cam', 'feat', 'meta'], ['gradcam', 'feat', 'auto']]);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'cam.json'), 'utf8'));
    expect(json.images).to.have.length(3);
    for (const img of json.images) {
      expect(img.classes).to.have.length(2);
      expect(img.classes[0].rank).to.equal(1);
      expect(img.classes[1].rank).to.equal(2);
      for (const m of ['cam', 'gradcam']) {
        expect(img.methods[m].overlays).to.have.length(2);
        for (const o of img.methods[m].overlays) {
          const meta = await sharp(path.join(out, o)).metadata();
          expect([meta.width, meta.height], o).to.deep.equal([img.width, img.height]);
        }
        const npy = readNpy(path.join(out, img.methods[m].npy[0]));
        expect(npy.shape).to.deep.equal([12, 12]); // 'feat' after one 2×2 max pool of 24×24
      }
      expect(fs.existsSync(path.join(out, img.strip))).to.equal(true);
    }
    const html = fs.readFileSync(s.gallery, 'utf8');
    expect((html.match(/<figure /g) ?? []).length).to.equal(3);
  });

  it('a VOC dataset with --class gt: IoU per image, GT boxes, normalised .npy, faithfulness metrics', async () => {
    const ds = await loadDataset(voc);
    const split = ds.records.some((r) => r.split === 'test') ? 'test' : 'train';
    const n = ds.records.filter((r) => r.split === split).length;
    const out = path.join(dir, 'out-voc');
    const s = await runCam({ model: modelDir, dataset: voc, split, classes: ['gt'], npy: 'normalized', metrics: true, metricSteps: 4, out, methods: ['cam', 'gradcam++', 'scorecam'] });
    expect(s.images).to.equal(n);
    expect(Object.keys(s.meanIou ?? {})).to.deep.equal(['cam', 'gradcam++', 'scorecam']);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'cam.json'), 'utf8'));
    for (const img of json.images) {
      const rec = ds.records.find((r) => r.id === img.id)!;
      expect(img.gt.classId).to.equal(rec.label); // dataset c0/c1 map to model c0/c1 by name
      expect(img.classes[0].classId).to.equal(rec.label);
      expect(img.methods.cam.iou).to.be.within(0, 1);
      const npy = readNpy(path.join(out, img.methods.cam.npy[0]));
      expect(npy.shape).to.deep.equal([24, 24]);
      expect(Math.max(...npy.data)).to.be.closeTo(1, 1e-6);
    }
    for (const r of Object.values(s.metrics ?? {})) {
      expect(r.images).to.equal(n);
      expect(r.averageDrop).to.be.within(0, 100);
      expect(r.deletionCurve).to.have.length(5);
      expect(r.insertionAuc).to.be.within(0, 1);
    }
    expect(fs.readFileSync(s.gallery, 'utf8')).to.include('IoU ');
  });

  it('a model that is not CAM-ready defaults to Grad-CAM at its last 4-D layer; --relu off is honoured', async () => {
    const m = tf.sequential({ layers: [
      tf.layers.conv2d({ inputShape: [20, 20, 3], filters: 3, kernelSize: 3, activation: 'relu', name: 'c1', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
      tf.layers.conv2d({ filters: 2, kernelSize: 3, name: 'c2', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }),
      tf.layers.flatten({}), tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) })] });
    const mdir = path.join(dir, 'flat-model');
    await saveLayersModelToDir(mdir, m);
    m.dispose();
    const out = path.join(dir, 'out-flat');
    const s = await runCam({ model: mdir, images, out, relu: false, npy: 'raw' });
    expect(s.methods).to.deep.equal([{ name: 'gradcam', layer: 'c2', layerChoice: 'auto', relu: false }]);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'cam.json'), 'utf8'));
    expect(json.images[0].classes[0].className).to.equal('class_' + json.images[0].classes[0].classId);
    expect(readNpy(path.join(out, json.images[0].methods.gradcam.npy[0])).shape).to.deep.equal([16, 16]);
    await runCam({ model: mdir, images, out, force: true, methods: ['cam'] }).then(() => expect.fail('should throw'), (e: Error) => expect(e.message).to.match(/not CAM-ready.*--method gradcam/));
  });

  it('errors are one line and name the thing', async () => {
    const out = path.join(dir, 'out-err');
    await runCam({ model: modelDir, images, classes: ['gt'], out }).then(() => expect.fail('should throw'), (e: Error) => expect(e.message).to.match(/--class gt: needs --dataset/));
    await runCam({ model: modelDir, images: path.join(dir, 'nope'), out }).then(() => expect.fail('should throw'), (e: Error) => expect(e.message).to.match(/image or folder not found/));
    await runCam({ model: modelDir, images, classes: ['dog'], out }).then(() => expect.fail('should throw'), (e: Error) => expect(e.message).to.match(/--class dog/));
  });

  it('the CLI runs end to end and skips unreadable images', async () => {
    const folder = path.join(dir, 'mixed');
    fs.mkdirSync(folder);
    fs.copyFileSync(path.join(images, 'img1.png'), path.join(folder, 'good.png'));
    fs.writeFileSync(path.join(folder, 'broken.jpg'), 'not a jpeg');
    const out = path.join(dir, 'out-cli');
    const { code, stdout } = await main(['cam', modelDir, folder, '--method', 'layercam', '--colormap', 'viridis', '--out', out, '--backend', process.env.GAPCAM_TEST_BACKEND ?? 'tensorflow']);
    expect(code, stdout).to.equal(0);
    expect(stdout).to.match(/1 image in .* 1 skipped/);
    expect(stdout).to.include('layercam: layer feat (auto)');
    expect(fs.existsSync(path.join(out, 'index.html'))).to.equal(true);
  });
});
