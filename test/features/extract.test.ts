import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import seedrandom from 'seedrandom';
import { useEngine, makeTempDir, expectNoTensorLeak } from '../helpers.js';
import { extractFeatures, resolveFeatureLayer, type FeatureModel } from '../../src/features/extract.js';
import { ensureFeatures, type LoadedFeatureModel } from '../../src/features/service.js';
import { readFeatureSet } from '../../src/features/store.js';
import type { Box, Dataset, ImageRecord } from '../../src/data/types.js';
import { UserError } from '../../src/errors.js';

const S = 16;

/** input [16,16,3] → conv3×3 'feat' (relu, 5) → GAP 'gap' → Dense 'fc' (3). */
function gapDense(): FeatureModel {
  const input = tf.input({ shape: [S, S, 3] });
  const f = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', activation: 'relu', name: 'feat', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), biasInitializer: tf.initializers.constant({ value: 0.1 }) }).apply(input) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(f) as tf.SymbolicTensor;
  const d = tf.layers.dense({ units: 3, name: 'fc', kernelInitializer: tf.initializers.randomNormal({ stddev: 1, seed: 4 }) }).apply(g) as tf.SymbolicTensor;
  return {
    model: tf.model({ inputs: input, outputs: d, name: 'tiny_gap_dense' }),
    meta: { classNames: ['a', 'b', 'c'], preprocessing: 'unit', inputSize: [S, S], headKind: 'gap-dense', featureLayer: 'feat', poolingLayer: 'gap', classifierLayer: 'fc', outputIsSoftmax: false },
  };
}

/** input → 1×1 conv 'body' (identity on RGB) → 1×1 conv 'cls' (class 0 = red, class 1 = ½ green) → GAP: darknet style,
 *  so the CAM of class 0 is the red channel. */
function redConvGap(): FeatureModel {
  const input = tf.input({ shape: [S, S, 3] });
  const body = tf.layers.conv2d({ filters: 3, kernelSize: 1, name: 'body', weights: [tf.eye(3).reshape([1, 1, 3, 3]), tf.zeros([3])] }).apply(input) as tf.SymbolicTensor;
  const kernel = tf.tensor4d([1, 0, 0, 0.5, 0, 0], [1, 1, 3, 2]);
  const cls = tf.layers.conv2d({ filters: 2, kernelSize: 1, name: 'cls', weights: [kernel, tf.zeros([2])] }).apply(body) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(cls) as tf.SymbolicTensor;
  return {
    model: tf.model({ inputs: input, outputs: g, name: 'red_conv_gap' }),
    meta: { classNames: ['red', 'green'], preprocessing: 'unit', inputSize: [S, S], headKind: 'conv-gap', featureLayer: 'cls', poolingLayer: 'gap', outputIsSoftmax: false },
  };
}

async function writePng(file: string, w: number, h: number, pixel: (x: number, y: number) => [number, number, number]): Promise<Uint8Array> {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(pixel(x, y), (y * w + x) * 3);
  await sharp(Buffer.from(data), { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
  return data;
}

function record(id: string, file: string, w: number, h: number, label: number, boxes: Box[] = []): ImageRecord {
  return { id, path: file, label, width: w, height: h, boxes, split: 'train' };
}

/** Independent reference: the layer output for raw RGB pixels, averaged over h × w when spatial. */
function reference(fm: FeatureModel, layer: string, rgb: Uint8Array[], w: number, h: number): number[][] {
  const sub = tf.model({ inputs: fm.model.inputs, outputs: fm.model.getLayer(layer).output as tf.SymbolicTensor });
  return tf.tidy(() => {
    const x = tf.tensor4d(Float32Array.from(rgb.flatMap((a) => Array.from(a, (v) => v / 255))), [rgb.length, h, w, 3]);
    let y = sub.predict(x) as tf.Tensor;
    if (y.rank === 4) y = y.mean([1, 2]);
    return y.arraySync() as number[][];
  });
}

function crop(rgb: Uint8Array, w: number, [x0, y0, x1, y1]: Box): Uint8Array {
  const out: number[] = [];
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) out.push(rgb[(y * w + x) * 3], rgb[(y * w + x) * 3 + 1], rgb[(y * w + x) * 3 + 2]);
  return Uint8Array.from(out);
}

function expectRowsClose(data: Float32Array, dim: number, expected: number[][], tol = 1e-5): void {
  expect(data.length).to.equal(expected.length * dim);
  expected.forEach((row, i) => row.forEach((v, j) => expect(data[i * dim + j], `row ${i} col ${j}`).to.be.closeTo(v, tol)));
}

describe('features: GAP feature extraction', () => {
  before(useEngine);
  let tmp: string;
  const fullRgb: Uint8Array[] = [];
  const bigRgb: Uint8Array[] = [];
  const fullRecs: ImageRecord[] = [];
  const bigRecs: ImageRecord[] = [];
  const redRecs: ImageRecord[] = [];
  const SQUARE: Box = [4, 5, 11, 10];

  before(async () => {
    tmp = makeTempDir('gapcam-features-');
    const rng = seedrandom('pixels');
    for (let i = 0; i < 5; i++) {
      const f = path.join(tmp, `img${i}.png`);
      fullRgb.push(await writePng(f, S, S, () => [Math.floor(rng() * 256), Math.floor(rng() * 256), Math.floor(rng() * 256)]));
      fullRecs.push(record(`img${i}`, f, S, S, i % 3));
      const g = path.join(tmp, `big${i}.png`);
      bigRgb.push(await writePng(g, 32, 24, () => [Math.floor(rng() * 256), Math.floor(rng() * 256), Math.floor(rng() * 256)]));
      bigRecs.push(record(`big${i}`, g, 32, 24, i % 3, [[8 + i, 3, 23 + i, 18]]));
      const r = path.join(tmp, `red${i}.png`);
      await writePng(r, S, S, (x, y) => (x >= SQUARE[0] + i % 2 && x <= SQUARE[2] && y >= SQUARE[1] && y <= SQUARE[3] ? [255, 0, 0] : [0, 40, 0]));
      redRecs.push(record(`red${i}`, r, S, S, 0, [[SQUARE[0] + (i % 2), SQUARE[1], SQUARE[2], SQUARE[3]]]));
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("resolves 'gap' to the GAP output (gap-dense) and to the pooled input of the class conv (conv-gap)", () => {
    expect(resolveFeatureLayer(gapDense())).to.deep.include({ layer: 'gap', pooling: 'identity', dimension: 5 });
    expect(resolveFeatureLayer(redConvGap())).to.deep.include({ layer: 'body', pooling: 'global-average', dimension: 3 });
    expect(resolveFeatureLayer(gapDense(), 'feat')).to.deep.include({ layer: 'feat', pooling: 'global-average', dimension: 5 });
    expect(() => resolveFeatureLayer(gapDense(), 'nope')).to.throw(UserError, /--layer 'nope': no such layer/);
  });

  it('gives the GAP-layer output of each whole image, in record order, across batch boundaries', async () => {
    const fm = gapDense();
    const res = await extractFeatures(fm, fullRecs, { batchSize: 2 });
    expect(res.dimension).to.equal(5);
    expectRowsClose(res.data, 5, reference(fm, 'gap', fullRgb, S, S));
    // A named spatial layer, averaged over h × w, is the same vector; a named 2-D layer is taken as is (logits).
    const named = await extractFeatures(fm, fullRecs, { batchSize: 3, layer: 'feat' });
    expectRowsClose(named.data, 5, reference(fm, 'gap', fullRgb, S, S));
    const logits = await extractFeatures(fm, fullRecs, { layer: 'fc' });
    expectRowsClose(logits.data, 3, reference(fm, 'fc', fullRgb, S, S));
  });

  it('--crop gt-box takes the features of the ground-truth box', async () => {
    const fm = gapDense();
    const res = await extractFeatures(fm, bigRecs, { crop: 'gt-box', batchSize: 4 });
    const crops = bigRgb.map((rgb, i) => crop(rgb, 32, bigRecs[i].boxes[0]));
    expectRowsClose(res.data, 5, reference(fm, 'gap', crops, S, S));
    expect(res.regions).to.deep.equal(bigRecs.map((r) => r.boxes[0]));
    expect(res.fallbacks).to.equal(0);
  });

  it("--crop cam crops to the model's own CAM box of its top-1 class (paper rule) and extracts from the crop", async () => {
    const fm = redConvGap();
    const res = await extractFeatures(fm, redRecs, { crop: 'cam', batchSize: 2 });
    expect(res.camClasses).to.deep.equal([0, 0, 0, 0, 0]);
    expect(res.regions).to.deep.equal(redRecs.map((r) => r.boxes[0]));
    // The crop is all red: the pooled 'body' features are exactly [1, 0, 0].
    expectRowsClose(res.data, 3, redRecs.map(() => [1, 0, 0]), 1e-6);
    const gt = await extractFeatures(fm, redRecs, { crop: 'gt-box' });
    expect(Array.from(res.data)).to.deep.equal(Array.from(gt.data));
  });

  it('does not leak tensors over repeated extractions (full and cam crops)', async () => {
    const a = gapDense();
    const b = redConvGap();
    await expectNoTensorLeak(async () => {
      await extractFeatures(a, fullRecs, { batchSize: 2 });
      await extractFeatures(b, redRecs, { crop: 'cam', batchSize: 3 });
    });
  });

  it('does not leak tensors over repeated extractions from regions (gt-box, with a bad image skipped)', async () => {
    const fm = gapDense();
    const broken = path.join(tmp, 'broken-leak.jpg');
    fs.writeFileSync(broken, Buffer.from('not a jpeg either'));
    const recs = [...bigRecs, record('broken', broken, 32, 24, 0, [[0, 0, 7, 7]])];
    await expectNoTensorLeak(async () => {
      const res = await extractFeatures(fm, recs, { crop: 'gt-box', batchSize: 2, skipBadImages: true });
      expect(res.count).to.equal(bigRecs.length);
    });
  });

  it('skips a bad image by its position when records repeat files (full, cam and gt-box passes)', async () => {
    const fm = gapDense();
    const broken = path.join(tmp, 'broken-twice.jpg');
    fs.writeFileSync(broken, Buffer.from('still not a jpeg'));
    const bad = record('broken', broken, S, S, 1, [[0, 0, 7, 7]]);
    const recs = [fullRecs[0], bad, fullRecs[0], bad, fullRecs[1]];
    const expected = reference(fm, 'gap', [fullRgb[0], fullRgb[0], fullRgb[1]], S, S);
    for (const crop of ['full', 'cam', 'gt-box'] as const) {
      const res = await extractFeatures(fm, recs, { batchSize: 2, skipBadImages: true, crop });
      expect(res.kept, crop).to.deep.equal([0, 2, 4]);
      expect(res.skipped.map((k) => k.index), crop).to.deep.equal([1, 3]);
      expect(res.skipped[0].reason, crop).to.match(/^cannot decode image .*broken-twice\.jpg/);
      if (crop !== 'cam') expectRowsClose(res.data, 5, expected); // no boxes on the good images: gt-box falls back to whole
    }
  });

  it('writes a feature folder, reuses it for the same settings, and re-extracts with --force or new settings', async () => {
    const fm = gapDense();
    const model: LoadedFeatureModel = { fm, source: 'in-memory', checkpointId: 'abc', name: 'tiny' };
    const dataset: Dataset = { name: 'pngs', root: tmp, classNames: ['a', 'b', 'c'], records: bigRecs };
    const out = path.join(tmp, 'feat');
    const first = await ensureFeatures({ model, dataset, records: bigRecs, split: 'all', out });
    expect(first.reused).to.equal(false);
    const set = readFeatureSet(out);
    expect(set.count).to.equal(5);
    expect(set.rows[1]).to.deep.include({ row: 1, imageId: 'big1', classId: 1, className: 'b', split: 'train' });
    expect(set.meta.source).to.deep.include({ layer: 'gap', featureLayer: 'gap', crop: 'full', split: 'all', dataset: 'pngs' });
    const again = await ensureFeatures({ model, dataset, records: bigRecs, split: 'all', out });
    expect(again.reused).to.equal(true);
    expect(again.meta.cacheKey).to.equal(first.meta.cacheKey);
    const forced = await ensureFeatures({ model, dataset, records: bigRecs, split: 'all', out, force: true });
    expect(forced.reused).to.equal(false);
    const cropped = await ensureFeatures({ model, dataset, records: bigRecs, split: 'all', out, extract: { crop: 'gt-box' } });
    expect(cropped.reused).to.equal(false);
    expect(cropped.meta.cacheKey).to.not.equal(first.meta.cacheKey);
    expect(fs.readFileSync(path.join(out, 'crops.csv'), 'utf8').split('\n')[1]).to.equal('0,"big0",8,3,23,18');
    const otherModel = await ensureFeatures({ model: { ...model, checkpointId: 'def' }, dataset, records: bigRecs, split: 'all', out, extract: { crop: 'gt-box' } });
    expect(otherModel.reused).to.equal(false);
  });

  it('refuses --crop gt-box on a dataset without boxes, in one line', async () => {
    let caught: unknown;
    try {
      await extractFeatures(gapDense(), fullRecs, { crop: 'gt-box' });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UserError);
    expect((caught as Error).message).to.match(/^--crop gt-box: none of the 5 images has a ground-truth box/).and.not.include('\n');
  });

  it('stops at an undecodable image, or with skipBadImages leaves it out and lists it (full and crop passes)', async () => {
    const fm = gapDense();
    const broken = path.join(tmp, 'broken.jpg');
    fs.writeFileSync(broken, Buffer.from('not a jpeg at all'));
    const recs = [fullRecs[0], record('broken', broken, S, S, 1, [[0, 0, 7, 7]]), fullRecs[1], fullRecs[2]];
    let caught: unknown;
    try {
      await extractFeatures(fm, recs, { batchSize: 2 });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UserError);
    expect((caught as Error).message).to.include('broken.jpg');
    const expected = reference(fm, 'gap', [fullRgb[0], fullRgb[1], fullRgb[2]], S, S);
    for (const crop of ['full', 'cam'] as const) {
      const res = await extractFeatures(fm, recs, { batchSize: 2, skipBadImages: true, crop });
      expect(res.kept, crop).to.deep.equal([0, 2, 3]);
      expect(res.skipped.map((k) => k.id)).to.deep.equal(['broken']);
      if (crop === 'full') expectRowsClose(res.data, 5, expected);
      else expect(res.count).to.equal(3);
    }
  });
});
