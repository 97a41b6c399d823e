import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { useEngine, makeTempDir, expectNoTensorLeak } from '../helpers.js';
import { batches, prepareImage, epochOrder, type Batch } from '../../src/data/pipeline.js';
import { boxToInput, boxToOriginal, inputRegionInOriginal } from '../../src/data/geometry.js';
import { parseTransform, recipeOutputSize } from '../../src/data/transforms.js';
import type { Box, ImageRecord } from '../../src/data/types.js';
import { UserError } from '../../src/errors.js';

async function writeRgb(file: string, data: Uint8Array, w: number, h: number): Promise<void> {
  await sharp(Buffer.from(data), { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
}

/** A black w×h image with a white filled rectangle covering `box` (inclusive). */
function rectImage(w: number, h: number, box: Box): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = box[1]; y <= box[3]; y++) for (let x = box[0]; x <= box[2]; x++) d.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return d;
}

/** Inclusive bounding box of pixels brighter than 127 in an RGB image. */
function whiteBox(rgb: Uint8Array, w: number, h: number): Box | undefined {
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (rgb[(y * w + x) * 3] > 127) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  }
  return x1 < 0 ? undefined : [x0, y0, x1, y1];
}

function record(p: string, w: number, h: number, label = 0, boxes: Box[] = [], id = path.basename(p)): ImageRecord {
  return { id, path: p, label, width: w, height: h, boxes, split: 'train' };
}

async function collect(stream: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of stream) out.push(b);
  return out;
}

describe('data/pipeline', () => {
  before(useEngine);
  let dir: string;
  before(() => { dir = makeTempDir(); });

  it('a batch matches hand-computed values pixel for pixel in every preprocessing mode', async () => {
    // 2×2 image: (10,20,30) (200,100,50) / (0,0,0) (255,255,255)
    const px = Uint8Array.from([10, 20, 30, 200, 100, 50, 0, 0, 0, 255, 255, 255]);
    const f = path.join(dir, 'px.png');
    await writeRgb(f, px, 2, 2);
    const expect4 = {
      caffe: (r: number, g: number, b: number) => [b - 103.939, g - 116.779, r - 123.68],
      torch: (r: number, g: number, b: number) => [(r / 255 - 0.485) / 0.229, (g / 255 - 0.456) / 0.224, (b / 255 - 0.406) / 0.225],
      unit: (r: number, g: number, b: number) => [r / 255, g / 255, b / 255],
    };
    for (const mode of ['caffe', 'torch', 'unit'] as const) {
      const [batch] = await collect(batches([record(f, 2, 2)], { batchSize: 1, transforms: ['resize:2'], preprocess: mode }));
      expect(batch.images.shape).to.deep.equal([1, 2, 2, 3]);
      const got = batch.images.dataSync();
      const want: number[] = [];
      for (let i = 0; i < 4; i++) want.push(...expect4[mode](px[i * 3], px[i * 3 + 1], px[i * 3 + 2]));
      want.forEach((v, i) => expect(got[i], `${mode}[${i}]`).to.be.closeTo(v, 1e-4));
      batch.images.dispose();
    }
  });

  it('a horizontal flip mirrors pixels and boxes exactly', async () => {
    const box: Box = [5, 7, 14, 20];
    const f = path.join(dir, 'rect.png');
    await writeRgb(f, rectImage(40, 30, box), 40, 30);
    const [b] = await collect(batches([record(f, 40, 30, 0, [box])], { batchSize: 1, transforms: ['resize:30x40', 'flip:1'], preprocess: 'unit', keepRgb: true }));
    b.images.dispose();
    expect(b.boxes[0]).to.deep.equal([[40 - 1 - 14, 7, 40 - 1 - 5, 20]]);
    expect(whiteBox(b.rgb![0], 40, 30)).to.deep.equal(b.boxes[0][0]);
    expect(boxToOriginal(b.boxes[0][0], b.geometry[0])).to.deep.equal(box);
  });

  it('resize (up ×2 and down ×0.5), center crop and shorter-side crop move boxes exactly with the pixels', async () => {
    const box: Box = [4, 6, 13, 19];
    const f = path.join(dir, 'rect2.png');
    await writeRgb(f, rectImage(40, 30, box), 40, 30);
    const cases: [string[], Box][] = [
      [['resize:60x80'], [8, 12, 27, 39]],
      [['resize:15x20'], [2, 3, 6, 9]],
      [['center-crop:20'], [0, 1, 3, 14]], // crop left = 10, top = 5; box clipped at x = 0
      [['resize:15:shorter-crop'], [0, 3, 3, 9]], // 40×30 → 20×15, crop left = round(5/2) = 3: x edges [2, 7] → [-1, 4], clipped
    ];
    for (const [transforms, want] of cases) {
      const [b] = await collect(batches([record(f, 40, 30, 0, [box])], { batchSize: 1, transforms, preprocess: 'unit', keepRgb: true, kernel: 'nearest' }));
      b.images.dispose();
      const [H, W] = recipeOutputSize(transforms.map(parseTransform))!;
      expect(b.boxes[0], transforms.join(' ')).to.deep.equal([want]);
      expect(whiteBox(b.rgb![0], W, H), transforms.join(' ')).to.deep.equal(want);
    }
    // The unclipped map inverts exactly.
    const p = await prepareImage(f, { transforms: ['center-crop:20'] });
    expect(boxToInput(box, p.geometry)).to.deep.equal([-6, 1, 3, 14]);
    expect(boxToOriginal(boxToInput(box, p.geometry), p.geometry)).to.deep.equal(box);
    expect(inputRegionInOriginal(p.geometry)).to.deep.equal([10, 5, 29, 24]);
  });

  it('random resized crops with flips: boxes follow the pixels, and mapping back is exact', async () => {
    const box: Box = [12, 9, 27, 22];
    const f = path.join(dir, 'rect3.png');
    await writeRgb(f, rectImage(40, 32, box), 40, 32);
    let flips = 0;
    for (let epoch = 0; epoch < 12; epoch++) {
      // an explicit id: the default (the file's path, under a random temp folder) would seed other crops every run
      const p = await prepareImage(f, { transforms: ['random-crop:24:0.5-1', 'flip'], seed: 7, epoch, kernel: 'nearest' }, 'rect3');
      if (p.geometry.flipped) flips++;
      const mapped = boxToInput(box, p.geometry);
      const back = boxToOriginal(mapped, p.geometry);
      back.forEach((v, i) => expect(v).to.be.closeTo(box[i], 1e-9));
      const seen = whiteBox(p.rgb, 24, 24)!;
      // nearest sampling at a non-integer scale: every edge within one pixel of the exact mapped box
      const clipped = [Math.max(0, mapped[0]), Math.max(0, mapped[1]), Math.min(23, mapped[2]), Math.min(23, mapped[3])];
      // (1 + 1e-9: an edge exactly one pixel off can compute as 1.0000000000000036)
      seen.forEach((v, i) => expect(Math.abs(v - clipped[i]), `epoch ${epoch} edge ${i}`).to.be.at.most(1 + 1e-9));
    }
    expect(flips).to.be.within(1, 11);
  });

  describe('batching', () => {
    let records: ImageRecord[];
    before(async () => {
      records = [];
      for (let i = 0; i < 10; i++) {
        const f = path.join(dir, `img${i}.png`);
        const d = new Uint8Array(20 * 16 * 3).map((_, k) => (k * (i + 3)) % 256);
        await writeRgb(f, d, 20, 16);
        records.push(record(f, 20, 16, i % 3, [[2, 2, 9, 9]], `img${i}`));
      }
    });
    const opts = { batchSize: 4, transforms: ['random-crop:12:0.5-1', 'flip'], preprocess: 'unit' as const, shuffle: true, seed: 3 };

    it('covers every record once per epoch in batches of batchSize; order and augmentation are fixed by seed and epoch', async () => {
      const a = await collect(batches(records, { ...opts, epoch: 1 }));
      const b = await collect(batches(records, { ...opts, epoch: 1, prefetch: 0, concurrency: 1 }));
      const c = await collect(batches(records, { ...opts, epoch: 2 }));
      expect(a.map((x) => x.records.length)).to.deep.equal([4, 4, 2]);
      const ids = (bs: Batch[]) => bs.flatMap((x) => x.records.map((r) => r.id));
      expect([...ids(a)].sort()).to.deep.equal(records.map((r) => r.id).sort());
      expect(ids(a)).to.deep.equal(ids(b));
      expect(ids(a)).to.not.deep.equal(ids(c));
      expect(Array.from(a[0].labels)).to.deep.equal(a[0].records.map((r) => r.label));
      a.forEach((x, i) => expect(Array.from(x.images.dataSync())).to.deep.equal(Array.from(b[i].images.dataSync())));
      [...a, ...b, ...c].forEach((x) => x.images.dispose());
      expect(epochOrder(5, false)).to.deep.equal([0, 1, 2, 3, 4]);
    });

    it('tensor count stays flat over epochs when the consumer disposes each batch', async () => {
      await expectNoTensorLeak(async () => {
        for await (const batch of batches(records, { ...opts, epoch: 5 })) batch.images.dispose();
      });
      // stopping early leaves nothing behind either
      const before = tf.memory().numTensors;
      for await (const batch of batches(records, opts)) { batch.images.dispose(); break; }
      expect(tf.memory().numTensors).to.equal(before);
    });

    it('the cache makes the second epoch skip decoding and gives the same pixels', async () => {
      const cacheDir = path.join(dir, 'cache');
      const o = { ...opts, transforms: ['resize:16x20', 'random-crop:12', 'flip'], cacheDir };
      const s1 = batches(records, { ...o, epoch: 0 });
      const e1 = await collect(s1);
      const s2 = batches(records, { ...o, epoch: 0 });
      const e2 = await collect(s2);
      expect([s1.stats.cacheMisses, s1.stats.cacheHits]).to.deep.equal([10, 0]);
      expect([s2.stats.cacheMisses, s2.stats.cacheHits]).to.deep.equal([0, 10]);
      const nocache = await collect(batches(records, { ...o, cacheDir: undefined, epoch: 0 }));
      e1.forEach((x, i) => {
        expect(Array.from(x.images.dataSync())).to.deep.equal(Array.from(e2[i].images.dataSync()));
        expect(Array.from(x.images.dataSync())).to.deep.equal(Array.from(nocache[i].images.dataSync()));
        expect(x.boxes).to.deep.equal(e2[i].boxes);
      });
      [...e1, ...e2, ...nocache].forEach((x) => x.images.dispose());
    });

    it('a bad image stops the epoch with a one-line UserError naming the file, or is a counted skip when asked', async () => {
      const badFile = path.join(dir, 'bad.jpg');
      fs.writeFileSync(badFile, 'not an image');
      const emptyFile = path.join(dir, 'empty.png');
      fs.writeFileSync(emptyFile, '');
      const withBad = [...records.slice(0, 5), record(badFile, 20, 16), record(emptyFile, 20, 16), ...records.slice(5)];
      let err: unknown;
      try {
        for await (const b of batches(withBad, { ...opts, shuffle: false })) b.images.dispose();
      } catch (e) { err = e; }
      expect(err).to.be.instanceOf(UserError);
      expect((err as Error).message).to.include(badFile).and.not.include('\n');
      const s = batches(withBad, { ...opts, skipBadImages: true });
      let n = 0;
      for await (const b of s) { n += b.records.length; b.images.dispose(); }
      expect(n).to.equal(10);
      expect(s.stats.skipped.map((k) => k.file).sort()).to.deep.equal([badFile, emptyFile].sort());
      expect(s.stats.skipped.find((k) => k.file === emptyFile)!.reason).to.include('empty');
    });

    it('rejects a recipe without a fixed output size', () => {
      expect(() => batches(records, { ...opts, transforms: ['flip'] })).to.throw(UserError, /fixed size/);
      expect(() => batches(records, { ...opts, transforms: ['resize:20:shorter'] })).to.throw(UserError, /fixed size/);
      expect(() => parseTransform('rotate:5')).to.throw(UserError, /unknown transform/);
    });
  });
});
