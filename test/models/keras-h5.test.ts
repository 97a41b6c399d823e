import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import seedrandom from 'seedrandom';
import h5wasm from 'h5wasm/node';
import { useEngine, makeTempDir, expectNoTensorLeak, expectUserError } from '../helpers.js';
import { buildVggFromArch, type VggArch } from '../../src/models/backbones/vgg.js';
import { loadKerasWeights, readKerasH5, saveKerasH5, kerasSnakeCase } from '../../src/models/keras-h5.js';
import { downloadVerified, fetchImagenetWeights, fetchPretrained, kerasCacheDirs } from '../../src/models/pretrained.js';
import { buildBackbone } from '../../src/models/registry.js';
import { UserError } from '../../src/errors.js';

const MINI: VggArch = { cfg: [4, 'M', 6, 6, 'M'], fcUnits: 8 };
const H = 8;
const CLASSES = 3;
/** [layer, weight shapes] of MINI at 8×8×3 with 3 classes (Keras order: kernel, bias). */
const LAYERS: [string, number[][]][] = [
  ['block1_conv1', [[3, 3, 3, 4], [4]]],
  ['block2_conv1', [[3, 3, 4, 6], [6]]],
  ['block2_conv2', [[3, 3, 6, 6], [6]]],
  ['fc1', [[2 * 2 * 6, 8], [8]]],
  ['fc2', [[8, 8], [8]]],
  ['predictions', [[8, CLASSES], [CLASSES]]],
];
const ALL_LAYER_NAMES = ['block1_conv1', 'block1_pool', 'block2_conv1', 'block2_conv2', 'block2_pool', 'flatten', 'fc1', 'fc2', 'predictions'];

function randomArrays(seed: string): Map<string, Float32Array[]> {
  const rng = seedrandom(seed);
  const out = new Map<string, Float32Array[]>();
  for (const [name, shapes] of LAYERS) {
    out.set(name, shapes.map((s) => Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => (rng() - 0.5) * 0.8)));
  }
  return out;
}

/** Writes a file laid out like the official keras-applications VGG files (Keras 1 weight names). */
async function writeOfficialStyleH5(file: string, arrays: Map<string, Float32Array[]>, opts: { badShape?: boolean } = {}): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(file, 'w');
  const sattr = (g: InstanceType<typeof h5wasm.Group>, name: string, v: string[]) =>
    v.length ? g.create_attribute(name, v, [v.length], `S${Math.max(...v.map((s) => s.length))}`) : g.create_attribute(name, new Float32Array(0), [0], '<f');
  sattr(f, 'layer_names', ALL_LAYER_NAMES);
  for (const ln of ALL_LAYER_NAMES) {
    const g = f.create_group(ln);
    const w = arrays.get(ln);
    const shapes = LAYERS.find(([n]) => n === ln)?.[1];
    const names = w ? [`${ln}_W_1:0`, `${ln}_b_1:0`] : [];
    sattr(g, 'weight_names', names);
    names.forEach((n, i) => {
      let shape = shapes![i];
      if (opts.badShape && ln === 'block2_conv1' && i === 0) shape = [3, 3, 4, 5];
      const data = opts.badShape && ln === 'block2_conv1' && i === 0 ? w![i].slice(0, 3 * 3 * 4 * 5) : w![i];
      g.create_dataset({ name: n, data, shape, dtype: '<f' });
    });
  }
  f.close();
}

/** Keras 3 `.weights.h5`: layers/<snake_case class + counter>/vars/<i>. */
async function writeKeras3H5(file: string, arrays: Map<string, Float32Array[]>): Promise<void> {
  await h5wasm.ready;
  const f = new h5wasm.File(file, 'w');
  const layers = f.create_group('layers');
  const k3 = ['conv2d', 'conv2d_1', 'conv2d_2', 'dense', 'dense_1', 'dense_2'];
  LAYERS.forEach(([name, shapes], li) => {
    const vars = layers.create_group(k3[li]).create_group('vars');
    shapes.forEach((s, i) => vars.create_dataset({ name: String(i), data: arrays.get(name)![i], shape: s, dtype: '<f' }));
  });
  for (const extra of ['input_layer', 'max_pooling2d', 'max_pooling2d_1', 'flatten']) layers.create_group(extra).create_group('vars');
  f.create_group('vars');
  f.close();
}

// ---- an independent reference forward pass in plain JS (NHWC, Keras semantics) ----
function conv3x3Relu(x: Float32Array, h: number, w: number, cin: number, k: Float32Array, b: Float32Array, cout: number): Float32Array {
  const out = new Float32Array(h * w * cout);
  for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) for (let o = 0; o < cout; o++) {
    let s = b[o];
    for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) {
      const iy = y + dy - 1;
      const ix = xx + dx - 1;
      if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
      for (let i = 0; i < cin; i++) s += x[(iy * w + ix) * cin + i] * k[((dy * 3 + dx) * cin + i) * cout + o];
    }
    out[(y * w + xx) * cout + o] = Math.max(0, s);
  }
  return out;
}
function maxPool2(x: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array((h / 2) * (w / 2) * c);
  for (let y = 0; y < h / 2; y++) for (let xx = 0; xx < w / 2; xx++) for (let ch = 0; ch < c; ch++) {
    let m = -Infinity;
    for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) m = Math.max(m, x[((2 * y + dy) * w + 2 * xx + dx) * c + ch]);
    out[(y * (w / 2) + xx) * c + ch] = m;
  }
  return out;
}
function dense(x: Float32Array, k: Float32Array, b: Float32Array, units: number, act: 'relu' | 'softmax'): Float32Array {
  const out = new Float32Array(units);
  for (let u = 0; u < units; u++) {
    let s = b[u];
    for (let i = 0; i < x.length; i++) s += x[i] * k[i * units + u];
    out[u] = s;
  }
  if (act === 'relu') return out.map((v) => Math.max(0, v));
  const m = Math.max(...out);
  const e = out.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b2) => a + b2, 0);
  return e.map((v) => v / z);
}
function reference(img: Float32Array, a: Map<string, Float32Array[]>): Float32Array {
  let x = conv3x3Relu(img, 8, 8, 3, a.get('block1_conv1')![0], a.get('block1_conv1')![1], 4);
  x = maxPool2(x, 8, 8, 4);
  x = conv3x3Relu(x, 4, 4, 4, a.get('block2_conv1')![0], a.get('block2_conv1')![1], 6);
  x = conv3x3Relu(x, 4, 4, 6, a.get('block2_conv2')![0], a.get('block2_conv2')![1], 6);
  x = maxPool2(x, 4, 4, 6);
  x = dense(x, a.get('fc1')![0], a.get('fc1')![1], 8, 'relu');
  x = dense(x, a.get('fc2')![0], a.get('fc2')![1], 8, 'relu');
  return dense(x, a.get('predictions')![0], a.get('predictions')![1], CLASSES, 'softmax');
}

function mini(seed?: number): tf.LayersModel {
  return buildVggFromArch('mini', MINI, { inputShape: [H, H, 3], classes: CLASSES, seed });
}

function predictArray(m: tf.LayersModel, x: tf.Tensor): Float32Array {
  return tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync() as Float32Array);
}

describe('models/keras-h5', () => {
  before(useEngine);
  const arrays = randomArrays('keras-h5');
  let imgs: tf.Tensor;
  before(() => {
    imgs = tf.randomUniform([3, H, H, 3], 0, 1, 'float32', 21);
  });

  it('loads an official-layout Keras file; outputs equal an independent reference from the same arrays', async () => {
    const file = path.join(makeTempDir(), 'mini_weights_tf_dim_ordering_tf_kernels.h5');
    await writeOfficialStyleH5(file, arrays);
    const read = await readKerasH5(file);
    expect(read.layout).to.equal('keras2');
    expect(read.layerNames).to.deep.equal(ALL_LAYER_NAMES);
    const model = mini(99);
    const report = await loadKerasWeights(model, file);
    expect(report.match).to.equal('name');
    expect(report.loaded).to.deep.equal(LAYERS.map(([n]) => n));
    const got = predictArray(model, imgs);
    const data = imgs.dataSync() as Float32Array;
    for (let i = 0; i < 3; i++) {
      const ref = reference(data.subarray(i * H * H * 3, (i + 1) * H * H * 3), arrays);
      for (let c = 0; c < CLASSES; c++) expect(got[i * CLASSES + c]).to.be.closeTo(ref[c], 1e-5);
    }
    model.dispose();
  });

  it('a shape mismatch names the layer, the expected and the received shape', async () => {
    const file = path.join(makeTempDir(), 'bad.h5');
    await writeOfficialStyleH5(file, arrays, { badShape: true });
    const model = mini();
    await expectUserError(loadKerasWeights(model, file), /layer 'block2_conv1' weight 'kernel': expected shape \[3, 3, 4, 6\], file has \[3, 3, 4, 5\]/);
    await expectUserError(loadKerasWeights(model, path.join(path.dirname(file), 'nope.h5')), /does not exist/);
    fs.writeFileSync(path.join(path.dirname(file), 'text.h5'), 'not hdf5');
    await expectUserError(loadKerasWeights(model, path.join(path.dirname(file), 'text.h5')), /not a readable HDF5 file/);
    // a model with a layer the file lacks: named in the error
    const other = buildVggFromArch('other', { cfg: [4, 'M', 6, 6, 6, 'M'], fcUnits: 8 }, { inputShape: [H, H, 3], classes: CLASSES });
    await expectUserError(loadKerasWeights(other, file, { match: 'name' }), /no weights for layer 'block2_conv3'/);
    model.dispose();
    other.dispose();
  });

  it('reads Keras 3 .weights.h5 (class-name groups) and legacy model.save files', async () => {
    const dir = makeTempDir();
    const k3 = path.join(dir, 'mini.weights.h5');
    await writeKeras3H5(k3, arrays);
    const m3 = mini(5);
    const r3 = await loadKerasWeights(m3, k3);
    expect(r3.layout).to.equal('keras3');
    expect(kerasSnakeCase('BatchNormalization')).to.equal('batch_normalization');
    expect(kerasSnakeCase('LeakyReLU')).to.equal('leaky_re_lu');
    expect(kerasSnakeCase('Conv2D')).to.equal('conv2d');

    // legacy model.save: weights under model_weights, topology in model_config
    const legacy = path.join(dir, 'model.h5');
    await h5wasm.ready;
    const f = new h5wasm.File(legacy, 'w');
    f.create_attribute('model_config', JSON.stringify({ class_name: 'Functional', config: { name: 'mini' } }), null, 'S200');
    f.create_attribute('keras_version', '2.15.0', null, 'S6');
    const mw = f.create_group('model_weights');
    mw.create_attribute('layer_names', ALL_LAYER_NAMES, [ALL_LAYER_NAMES.length], 'S12');
    for (const ln of ALL_LAYER_NAMES) {
      const g = mw.create_group(ln);
      const w = arrays.get(ln);
      if (!w) {
        g.create_attribute('weight_names', new Float32Array(0), [0], '<f');
        continue;
      }
      g.create_attribute('weight_names', [`${ln}/kernel:0`, `${ln}/bias:0`], [2], 'S40');
      const sub = g.create_group(ln);
      const shapes = LAYERS.find(([n]) => n === ln)![1];
      sub.create_dataset({ name: 'kernel:0', data: w[0], shape: shapes[0], dtype: '<f' });
      sub.create_dataset({ name: 'bias:0', data: w[1], shape: shapes[1], dtype: '<f' });
    }
    f.close();
    const ml = mini(6);
    const rl = await loadKerasWeights(ml, legacy);
    expect(rl.layout).to.equal('keras2-model');
    expect((await readKerasH5(legacy)).modelConfig).to.deep.equal({ class_name: 'Functional', config: { name: 'mini' } });
    expect(Array.from(predictArray(m3, imgs))).to.deep.equal(Array.from(predictArray(ml, imgs)));
    m3.dispose();
    ml.dispose();
  });

  it('export → import round trip gives identical predictions, in the Keras 2 layout', async () => {
    const src = mini(1);
    const file = path.join(makeTempDir(), 'export.h5');
    await saveKerasH5(src, file);
    await h5wasm.ready;
    const f = new h5wasm.File(file, 'r');
    expect(f.attrs.layer_names.value).to.deep.equal(['input_1', ...ALL_LAYER_NAMES]);
    expect(f.attrs.keras_version.value).to.be.a('string');
    expect((f.get('block1_conv1') as InstanceType<typeof h5wasm.Group>).attrs.weight_names.value).to.deep.equal(['block1_conv1/kernel:0', 'block1_conv1/bias:0']);
    expect((f.get('block1_conv1/block1_conv1/kernel:0') as InstanceType<typeof h5wasm.Dataset>).shape).to.deep.equal([3, 3, 3, 4]);
    f.close();
    const dst = mini(2);
    expect(Array.from(predictArray(dst, imgs))).to.not.deep.equal(Array.from(predictArray(src, imgs)));
    const rep = await loadKerasWeights(dst, file);
    expect(rep.match).to.equal('name');
    expect(Array.from(predictArray(dst, imgs))).to.deep.equal(Array.from(predictArray(src, imgs)));
    await expectNoTensorLeak(async () => {
      await loadKerasWeights(dst, file);
      await saveKerasH5(dst, file);
    });
    // by order too (Keras' default load_weights), into a model whose layer names differ
    const renamed = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [H, H, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 8, activation: 'relu' }),
        tf.layers.dense({ units: 8, activation: 'relu' }),
        tf.layers.dense({ units: CLASSES, activation: 'softmax' }),
      ],
    });
    const ro = await loadKerasWeights(renamed, file);
    expect(ro.match).to.equal('order');
    expect(Array.from(predictArray(renamed, imgs))).to.deep.equal(Array.from(predictArray(src, imgs)));
    // a BatchNormalization model round-trips its moving statistics too
    const bnIn = tf.input({ shape: [4, 4, 2] });
    const bnOut = tf.layers.batchNormalization({ name: 'bn', movingMeanInitializer: tf.initializers.randomNormal({ seed: 1 }), movingVarianceInitializer: 'ones' }).apply(bnIn) as tf.SymbolicTensor;
    const bn = tf.model({ inputs: bnIn, outputs: bnOut });
    const bnFile = path.join(path.dirname(file), 'bn.h5');
    await saveKerasH5(bn, bnFile);
    const bnRead = await readKerasH5(bnFile);
    expect(bnRead.layers.get('bn')!.map((w) => w.name)).to.deep.equal(['bn/gamma:0', 'bn/beta:0', 'bn/moving_mean:0', 'bn/moving_variance:0']);
    expect(Array.from(bnRead.layers.get('bn')![2].values)).to.deep.equal(Array.from(bn.getLayer('bn').getWeights()[2].dataSync()));
    [src, dst, renamed, bn].forEach((m) => m.dispose());
  });

  describe('--weights imagenet download, checksum and cache (local http server)', () => {
    let server: http.Server;
    let base: string;
    let hits: string[] = [];
    let body: Buffer;
    before(async () => {
      const dir = makeTempDir();
      const file = path.join(dir, 'w.h5');
      await writeOfficialStyleH5(file, arrays);
      body = fs.readFileSync(file);
      server = http.createServer((req, res) => {
        hits.push(req.url ?? '');
        if (req.url?.endsWith('.h5')) {
          res.writeHead(200, { 'content-length': body.length });
          res.end(body);
        } else {
          res.writeHead(404);
          res.end();
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    });
    after(() => server.close());
    beforeEach(() => (hits = []));

    it('downloads, verifies the md5, caches atomically and reuses the cache', async () => {
      const cacheDir = makeTempDir();
      const md5 = crypto.createHash('md5').update(body).digest('hex');
      const spec = { urlPath: 'mini/mini.h5', file: 'mini.h5', md5 };
      let progress = 0;
      const logged: string[] = [];
      const p1 = await fetchPretrained(spec, { cacheDir, weightsBaseUrl: base, onProgress: (r) => (progress = r), log: (l) => logged.push(l) });
      expect(logged).to.have.length(1);
      expect(logged[0]).to.include('mini/mini.h5');
      expect(p1).to.equal(path.join(cacheDir, 'mini.h5'));
      expect(progress).to.equal(body.length);
      expect(hits).to.deep.equal(['/mini/mini.h5']);
      expect(fs.readdirSync(cacheDir)).to.deep.equal(['mini.h5']);
      const p2 = await fetchPretrained(spec, { cacheDir, weightsBaseUrl: base, log: (l) => logged.push(l) });
      expect(logged).to.have.length(1); // no download, no notice
      expect(p2).to.equal(p1);
      expect(hits).to.have.length(1); // served from the cache
      const model = mini();
      await loadKerasWeights(model, p2);
      model.dispose();
    });

    it("reuses a file in Keras' cache ($KERAS_HOME/models) when its md5 matches; a mismatching one is left alone", async () => {
      const cacheDir = makeTempDir();
      const kerasHome = makeTempDir();
      fs.mkdirSync(path.join(kerasHome, 'models'));
      const md5 = crypto.createHash('md5').update(body).digest('hex');
      const spec = { urlPath: 'mini/mini.h5', file: 'mini.h5', md5 };
      const inKeras = path.join(kerasHome, 'models', 'mini.h5');
      fs.writeFileSync(inKeras, body);
      expect(kerasCacheDirs({ KERAS_HOME: kerasHome })).to.deep.equal([path.join(kerasHome, 'models')]);
      const logged: string[] = [];
      const p = await fetchPretrained(spec, { cacheDir, weightsBaseUrl: base, kerasCacheDirs: kerasCacheDirs({ KERAS_HOME: kerasHome }), log: (l) => logged.push(l) });
      expect(p).to.equal(inKeras);
      expect(hits).to.deep.equal([]); // nothing downloaded
      expect(logged).to.deep.equal([]);
      expect(fs.readdirSync(cacheDir)).to.deep.equal([]);
      // a corrupt copy in Keras' cache is not used and not touched: gapcam downloads into its own cache
      fs.writeFileSync(inKeras, Buffer.concat([body, Buffer.from('x')]));
      const p2 = await fetchPretrained(spec, { cacheDir, weightsBaseUrl: base, kerasCacheDirs: kerasCacheDirs({ KERAS_HOME: kerasHome }), log: () => {} });
      expect(p2).to.equal(path.join(cacheDir, 'mini.h5'));
      expect(hits).to.deep.equal(['/mini/mini.h5']);
      expect(fs.readFileSync(inKeras).length).to.equal(body.length + 1);
    });

    it('a checksum failure caches nothing (the official md5 does not match the served file)', async () => {
      const cacheDir = makeTempDir();
      await expectUserError(fetchImagenetWeights('vgg16', false, { cacheDir, weightsBaseUrl: base, log: () => {} }), /md5 [0-9a-f]{32} does not match the published 6d6bbae143d832006294945121d1f1fc/);
      expect(hits).to.deep.equal(['/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5']);
      expect(fs.readdirSync(cacheDir)).to.deep.equal([]);
      await expectUserError(downloadVerified(`${base}missing.bin`, path.join(cacheDir, 'x'), 'ff'), /HTTP 404/);
    });

    it('offline: one line naming the file to download and where to put it', async () => {
      const cacheDir = makeTempDir();
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((r) => closed.close(() => r()));
      const msg = await expectUserError(buildBackbone('vgg19', { includeTop: true, inputShape: [32, 32, 3], weights: 'imagenet', cacheDir, weightsBaseUrl: `http://127.0.0.1:${port}/`, log: () => {} }),
        /cannot download .*vgg19_weights_tf_dim_ordering_tf_kernels\.h5.*put it at/);
      expect(msg).to.include(path.join(cacheDir, 'vgg19_weights_tf_dim_ordering_tf_kernels.h5'));
      await expectUserError(buildBackbone('vgg16', { includeTop: true, classes: 5, weights: 'imagenet', cacheDir }), /classes = 1000/);
    });
  });
});
