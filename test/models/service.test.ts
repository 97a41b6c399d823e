import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { useEngine, makeTempDir, darknetTinyDir, sharedDatasetsDir, expectNoTensorLeak } from '../helpers.js';
import { loadCamModel } from '../../src/models/meta.js';
import { loadLayersModelFromDir, loadLayersModelFromUrl } from '../../src/models/layers-io.js';
import { loadModelRef } from '../../src/models/refs.js';
import { loadKerasWeights } from '../../src/models/keras-h5.js';
import { summarizeModel, formatModelSummary, runSurgery, exportModel, parseClasses } from '../../src/models/service.js';
import { parseInputShape as parseInputSize } from '../../src/commands/model.js';
import { decodeImage } from '../../src/data/image.js';
import { UserError } from '../../src/errors.js';

async function loadPhoto(file: string, size: number): Promise<tf.Tensor4D> {
  const img = await decodeImage(file);
  return tf.tidy(() => tf.image.resizeBilinear(tf.tensor3d(img.data, [img.height, img.width, 3], 'int32').toFloat().div(255) as tf.Tensor3D, [size, size]).expandDims(0) as tf.Tensor4D);
}

function predict(m: tf.LayersModel, x: tf.Tensor): number[] {
  return tf.tidy(() => Array.from((m.predict(x) as tf.Tensor).dataSync()));
}

describe('models/service and end-to-end', () => {
  before(useEngine);

  it('darknet-tiny classifies kangaroo photos sensibly (wallaby in the top 5 for about half)', async () => {
    const cam = await loadCamModel(darknetTinyDir);
    const dir = path.join(sharedDatasetsDir, 'kangaroo', 'images');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.jpg')).sort().filter((_, i) => i % 4 === 0);
    const wallaby = cam.meta.classNames.indexOf('wallaby');
    expect(wallaby).to.equal(215);
    let hits = 0;
    for (const f of files) {
      const x = await loadPhoto(path.join(dir, f), 224);
      const top5 = tf.tidy(() => Array.from(tf.topk(cam.model.predict(x) as tf.Tensor, 5).indices.dataSync()));
      x.dispose();
      if (top5.includes(wallaby)) hits++;
    }
    // measured on all 164 photos: 92 (56 %) in the top 5, 55 top-1
    expect(hits / files.length).to.be.within(0.35, 0.9);
    cam.model.dispose();
  });

  it('surgery → save → load (tfjs) → export → import (h5) keep predictions identical', async () => {
    const root = makeTempDir();
    const out = path.join(root, 'dn-gap');
    const r = await runSurgery({ model: darknetTinyDir, cutAt: 'leaky_re_lu_15', classes: 'kangaroo,raccoon', convFilters: 64, seed: 4, out });
    expect(r.meta).to.include({ headKind: 'gap-dense', featureLayer: 'gap_conv', classifierLayer: 'gap_classifier', preprocessing: 'unit' });
    expect(r.meta.classNames).to.deep.equal(['kangaroo', 'raccoon']);
    expect(fs.readFileSync(path.join(out, 'classes.txt'), 'utf8')).to.equal('kangaroo\nraccoon\n');
    const a = await loadCamModel(out);
    expect(a.meta).to.deep.equal(r.meta);
    const x = await loadPhoto(path.join(sharedDatasetsDir, 'kangaroo', 'images', fs.readdirSync(path.join(sharedDatasetsDir, 'kangaroo', 'images')).sort()[0]), 224);
    const ref = predict(a.model, x);

    // tfjs export (of a checkpoint-style run folder) → load
    fs.mkdirSync(path.join(root, 'run'));
    fs.renameSync(out, path.join(root, 'run', 'best'));
    const web = path.join(root, 'web');
    const e1 = await exportModel({ model: path.join(root, 'run'), format: 'tfjs', out: web });
    expect(e1.loaded).to.equal('checkpoint');
    const b = await loadCamModel(web);
    expect(b.meta).to.deep.equal(r.meta);
    expect(predict(b.model, x)).to.deep.equal(ref);

    // keras-h5 export → import into the same architecture holding other weights
    const h5 = path.join(root, 'dn-gap.h5');
    const e2 = await exportModel({ model: web, format: 'keras-h5', out: h5 });
    expect(e2.files).to.deep.equal([h5, path.join(root, 'dn-gap.meta.json')]);
    const c = await loadLayersModelFromDir(web);
    const noise = c.weights.map((w) => tf.randomNormal(w.shape, 0, 0.1, 'float32', 1));
    c.setWeights(noise);
    tf.dispose(noise);
    expect(predict(c, x)).to.not.deep.equal(ref);
    const rep = await loadKerasWeights(c, h5);
    expect(rep.loaded.length).to.equal(c.layers.filter((l) => l.weights.length).length);
    expect(predict(c, x)).to.deep.equal(ref);
    await expectNoTensorLeak(() => void predict(c, x));
    // the exported .h5 holds the architecture too: it loads as a model on its own, meta from dn-gap.meta.json
    const d = await loadModelRef(h5);
    expect(d.kind).to.equal('keras-h5');
    expect(d.meta).to.deep.equal(r.meta);
    expect(predict(d.model, x)).to.deep.equal(ref);
    d.model.dispose();
    [a.model, b.model, c].forEach((m) => m.dispose());
    x.dispose();
  });

  it('a saved model loads with tf.loadLayersModel over http (as in a browser), and with loadLayersModelFromUrl', async () => {
    const root = makeTempDir();
    const out = path.join(root, 'm');
    await runSurgery({ model: 'vgg-tiny', backbone: { inputShape: [32, 32, 3] }, classes: 3, convFilters: 8, seed: 2, out });
    const server = http.createServer((req, res) => {
      const f = path.join(out, path.basename(req.url ?? ''));
      if (!fs.existsSync(f)) {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200);
      res.end(fs.readFileSync(f));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.json`;
    try {
      const viaTf = await tf.loadLayersModel(url);
      const viaUs = await loadLayersModelFromUrl(url);
      const local = await loadCamModel(out);
      const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 8);
      expect(predict(viaTf, x)).to.deep.equal(predict(local.model, x));
      expect(predict(viaUs, x)).to.deep.equal(predict(local.model, x));
      const viaUrlCam = await loadCamModel(url);
      expect(viaUrlCam.meta).to.deep.equal(local.meta);
      [viaTf, viaUs, local.model, viaUrlCam.model].forEach((m) => m.dispose());
      x.dispose();
    } finally {
      server.close();
    }
  });

  it('summary of a backbone: layers, shapes, exact parameter counts', async () => {
    const s = await summarizeModel('vgg-tiny', { backbone: { includeTop: false, inputShape: [64, 64, 3] } });
    expect(s.layers.map((l) => l.name)[1]).to.equal('block1_conv1');
    expect(s.layers.find((l) => l.name === 'block4_conv2')!.outputShape).to.deep.equal([null, 8, 8, 128]);
    // 3·9·16+16, 16·9·32+32, 32·9·64+64, 64·9·64+64, 64·9·128+128, 128·9·128+128
    const expected = (3 * 9 * 16 + 16) + (16 * 9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 9 * 64 + 64) + (64 * 9 * 128 + 128) + (128 * 9 * 128 + 128);
    expect(s.totalParams).to.equal(expected);
    const text = formatModelSummary(s);
    expect(text).to.include(`total params: ${expected.toLocaleString('en-US')}`);
    expect(text).to.include('CAM head: none');
    const dn = formatModelSummary(await summarizeModel('darknet-tiny', { backbone: { weights: darknetTinyDir } }));
    expect(dn).to.include('CAM head: conv-gap; feature conv2d_16 → pooling global_average_pooling2d_1');
    expect(dn).to.include('kit fox');
  });

  it('parses --classes and --input-size, and refuses a *.weights.h5 export name', async () => {
    expect(parseClasses('3')).to.deep.equal({ classes: 3 });
    expect(parseClasses('a, b')).to.deep.equal({ classes: 2, classNames: ['a', 'b'] });
    const f = path.join(makeTempDir(), 'names.txt');
    fs.writeFileSync(f, 'x\ny\n\nz\n');
    expect(parseClasses(f)).to.deep.equal({ classes: 3, classNames: ['x', 'y', 'z'] });
    expect(() => parseClasses('a,a')).to.throw(UserError, /appears twice/);
    expect(() => parseClasses('0')).to.throw(UserError);
    expect(parseInputSize('224')).to.deep.equal([224, 224, 3]);
    expect(parseInputSize('224x160')).to.deep.equal([224, 160, 3]);
    expect(() => parseInputSize('big')).to.throw(UserError, /--input-size/);
    let err: unknown;
    await exportModel({ model: 'vgg-tiny', format: 'keras-h5', out: path.join(makeTempDir(), 'm.weights.h5'), backbone: { includeTop: false } }).catch((e) => (err = e));
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/Keras 3 reads/);
  });
});
