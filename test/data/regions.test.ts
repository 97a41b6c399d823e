// A region of an image (original pixels, after EXIF orientation) cut before the recipe: the pixels must be exactly
// those of sharp's chain normalise → extract (whole pixels covering the box) → resize 'fill' with lanczos3, which is
// what feature extraction has always fed its models (its own loader, replaced by the pipeline, gave these bytes; the
// reference below calls sharp directly with that chain).
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import seedrandom from 'seedrandom';
import { makeTempDir, useEngine } from '../helpers.js';
import { batches, prepareImage } from '../../src/data/pipeline.js';
import { DecodeCache } from '../../src/data/decode-cache.js';
import { boxToInput } from '../../src/data/geometry.js';
import type { Box, ImageRecord } from '../../src/data/types.js';

interface Rect { left: number; top: number; width: number; height: number }

/** The reference: sharp called directly, region as whole pixels given by hand. */
async function viaSharp(file: string, size: [number, number], rect?: Rect): Promise<Uint8Array> {
  let s = sharp(file, { failOn: 'error', limitInputPixels: 1 << 28 }).autoOrient().flatten({ background: { r: 255, g: 255, b: 255 } }).toColourspace('srgb');
  if (rect) s = s.extract(rect);
  const { data, info } = await s.resize(size[1], size[0], { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).to.equal(3);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A smooth image with noise (so that resampling shows every difference), w × h. */
function pixels(w: number, h: number, seed: string): Buffer {
  const rng = seedrandom(seed);
  const d = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = (y * w + x) * 3;
    d[o] = (x * 255) / w + rng() * 40;
    d[o + 1] = (y * 255) / h + rng() * 40;
    d[o + 2] = rng() * 255;
  }
  return d;
}

interface Case { name: string; record: ImageRecord; region?: Box; rect?: Rect }

describe('data: regions cut before the recipe (pixel identity with the sharp chain)', () => {
  before(useEngine);
  let dir: string;
  const size: [number, number] = [16, 12]; // height, width: non-square
  const cases: Case[] = [];

  before(async () => {
    dir = makeTempDir('gapcam-regions-');
    const rec = (id: string, file: string, width: number, height: number): ImageRecord => ({ id, path: file, label: 0, width, height, boxes: [], split: 'train' });
    const jpg = path.join(dir, 'a.jpg');
    await sharp(pixels(37, 23, 'a'), { raw: { width: 37, height: 23, channels: 3 } }).jpeg({ quality: 90 }).toFile(jpg);
    const png = path.join(dir, 'b.png');
    await sharp(pixels(29, 41, 'b'), { raw: { width: 29, height: 41, channels: 3 } }).png().toFile(png);
    // Large enough for JPEG shrink-on-load (a region turns it off in sharp; the whole image may use it).
    const big = path.join(dir, 'big.jpg');
    await sharp(pixels(200, 150, 'c'), { raw: { width: 200, height: 150, channels: 3 } }).jpeg({ quality: 85 }).toFile(big);
    // Stored 30 wide × 20 high, shown rotated (EXIF 6): 20 × 30 after orientation, which is where regions are given.
    const rotated = path.join(dir, 'rot.jpg');
    await sharp(pixels(30, 20, 'd'), { raw: { width: 30, height: 20, channels: 3 } }).jpeg({ quality: 90 }).withMetadata({ orientation: 6 }).toFile(rotated);
    const a = rec('a', jpg, 37, 23), b = rec('b', png, 29, 41), c = rec('big', big, 200, 150), r = rec('rot', rotated, 20, 30);
    cases.push(
      { name: 'JPEG, whole', record: a },
      { name: 'JPEG, fractional region', record: a, region: [3.4, 2.6, 20.2, 15.9], rect: { left: 3, top: 2, width: 19, height: 15 } },
      { name: 'JPEG, region past the right and bottom borders', record: a, region: [10, 5, 40.5, 30], rect: { left: 10, top: 5, width: 27, height: 18 } },
      { name: 'PNG, whole', record: b },
      { name: 'PNG, region at the top-left corner', record: b, region: [-2, 0, 11, 17.5], rect: { left: 0, top: 0, width: 12, height: 19 } },
      { name: 'PNG, one-pixel region', record: b, region: [7, 9, 7, 9], rect: { left: 7, top: 9, width: 1, height: 1 } },
      { name: 'large JPEG, whole', record: c },
      { name: 'large JPEG, region covering the whole image', record: c, region: [0, 0, 199, 149], rect: { left: 0, top: 0, width: 200, height: 150 } },
      { name: 'large JPEG, region', record: c, region: [20, 30, 179.2, 120], rect: { left: 20, top: 30, width: 161, height: 91 } },
      { name: 'EXIF-rotated JPEG, whole', record: r },
      { name: 'EXIF-rotated JPEG, region', record: r, region: [2, 5, 14, 27], rect: { left: 2, top: 5, width: 13, height: 23 } },
      { name: 'region the size of the input', record: a, region: [4, 3, 15, 18], rect: { left: 4, top: 3, width: 12, height: 16 } },
    );
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  const resize = [{ op: 'resize' as const, size, mode: 'exact' as const }];

  it("prepareImage with a region gives the sharp chain's bytes, and its geometry maps through the region", async () => {
    for (const c of cases) {
      const p = await prepareImage(c.record.path, { transforms: resize, region: c.region });
      expect(same(p.rgb, await viaSharp(c.record.path, size, c.rect)), c.name).to.equal(true);
      const rect = c.rect ?? { left: 0, top: 0, width: c.record.width, height: c.record.height };
      // the region's whole pixels fill the input exactly
      const edges = boxToInput([rect.left, rect.top, rect.left + rect.width - 1, rect.top + rect.height - 1], p.geometry);
      edges.forEach((v, k) => expect(v, c.name).to.be.closeTo([0, 0, size[1] - 1, size[0] - 1][k], 1e-9));
    }
  });

  for (const workers of [1, 0]) {
    it(`batches() with regions gives the same bytes, in record order (${workers ? 'decode worker' : 'main thread'})`, async () => {
      const records = cases.map((c) => c.record);
      const stream = batches(records, { batchSize: 5, transforms: ['resize:16x12'], regions: cases.map((c) => c.region), preprocess: 'unit', keepRgb: true, workers });
      const got: Uint8Array[] = [];
      const indices: number[] = [];
      for await (const b of stream) {
        b.images.dispose();
        got.push(...b.rgb!);
        indices.push(...b.indices);
      }
      expect(indices).to.deep.equal(cases.map((_, i) => i));
      for (const [i, c] of cases.entries()) expect(same(got[i], await viaSharp(c.record.path, size, c.rect)), c.name).to.equal(true);
    });
  }

  it('keys a decode cache by region: two regions of one file are two entries, each hit gives its own bytes', async () => {
    const memoryCache = new DecodeCache(2 ** 24);
    const [, one, two] = cases; // the same JPEG, two regions
    for (let round = 0; round < 2; round++) {
      for (const c of [one, two]) {
        const p = await prepareImage(c.record.path, { transforms: resize, region: c.region, memoryCache }, c.record.id);
        expect(p.fromCache, c.name).to.equal(round === 1);
        expect(same(p.rgb, await viaSharp(c.record.path, size, c.rect)), c.name).to.equal(true);
      }
    }
    expect(memoryCache.size).to.equal(2);
  });
});
