import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { useEngine, makeTempDir, expectNoTensorLeak } from '../helpers.js';
import { decodeImage, imageSize } from '../../src/data/image.js';
import { preprocessPixels, preprocessTensor, deprocessPixels } from '../../src/data/preprocess.js';
import { UserError } from '../../src/errors.js';

// A 3×2 RGB image with distinct, hand-chosen pixels.
const W = 3, H = 2;
const PIX = Uint8Array.from([
  255, 0, 0,    0, 255, 0,    0, 0, 255,
  10, 20, 30,   200, 100, 50, 0, 0, 0,
]);
const raw = (data: Uint8Array, w: number, h: number, channels: 1 | 2 | 3 | 4) =>
  sharp(Buffer.from(data), { raw: { width: w, height: h, channels } });

describe('data/image: decodeImage', () => {
  before(useEngine);
  let dir: string;
  before(() => { dir = makeTempDir(); });

  it('decodes an RGB PNG pixel for pixel', async () => {
    const f = path.join(dir, 'rgb.png');
    await raw(PIX, W, H, 3).png().toFile(f);
    const img = await decodeImage(f);
    expect([img.width, img.height]).to.deep.equal([W, H]);
    expect(Array.from(img.data)).to.deep.equal(Array.from(PIX));
  });

  it('turns greyscale into RGB with equal channels', async () => {
    const f = path.join(dir, 'grey.png');
    await raw(Uint8Array.from([0, 50, 100, 150, 200, 255]), W, H, 1).png().toFile(f);
    const img = await decodeImage(f);
    expect(Array.from(img.data)).to.deep.equal([0, 50, 100, 150, 200, 255].flatMap((v) => [v, v, v]));
  });

  it('turns 16-bit PNG into 8-bit RGB', async () => {
    const f = path.join(dir, 'deep.png');
    await raw(PIX, W, H, 3).toColourspace('rgb16').png().toFile(f);
    expect((await sharp(f).metadata()).depth).to.equal('ushort');
    const img = await decodeImage(f);
    expect(Array.from(img.data)).to.deep.equal(Array.from(PIX));
  });

  it('flattens alpha onto white by default (and onto a chosen background)', async () => {
    const f = path.join(dir, 'alpha.png');
    // pixel 0 opaque red, pixel 1 fully transparent, pixel 2 half-transparent black
    await raw(Uint8Array.from([255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 0, 128]), 3, 1, 4).png().toFile(f);
    const img = await decodeImage(f);
    expect(img.data.length).to.equal(9);
    expect(Array.from(img.data.slice(0, 6))).to.deep.equal([255, 0, 0, 255, 255, 255]);
    for (const v of img.data.slice(6)) expect(v).to.be.within(125, 129);
    const onBlack = await decodeImage(f, { background: [0, 0, 0] });
    expect(Array.from(onBlack.data.slice(3, 6))).to.deep.equal([0, 0, 0]);
  });

  it('converts CMYK JPEG to RGB', async () => {
    const f = path.join(dir, 'cmyk.jpg');
    const red = new Uint8Array(16 * 16 * 3);
    for (let i = 0; i < 256; i++) red.set([220, 30, 30], i * 3);
    await raw(red, 16, 16, 3).toColourspace('cmyk').jpeg({ quality: 95 }).toFile(f);
    expect((await sharp(f).metadata()).space).to.equal('cmyk');
    const img = await decodeImage(f);
    expect(img.data.length).to.equal(16 * 16 * 3);
    const [r, g, b] = img.data.slice(8 * 48 + 24, 8 * 48 + 27);
    expect(r).to.be.greaterThan(150);
    expect(g).to.be.lessThan(90);
    expect(b).to.be.lessThan(90);
  });

  it('applies EXIF orientation (6 = rotate 90° clockwise) to pixels and to imageSize', async () => {
    const f = path.join(dir, 'rot.png');
    // 4 wide × 2 high: left half white, right half black; stored with orientation 6.
    const px = new Uint8Array(4 * 2 * 3);
    for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) px.set([255, 255, 255], (y * 4 + x) * 3);
    await raw(px, 4, 2, 3).withMetadata({ orientation: 6 }).jpeg({ quality: 100 }).toFile(f);
    const img = await decodeImage(f);
    expect([img.width, img.height]).to.deep.equal([2, 4]);
    expect(await imageSize(f)).to.deep.equal({ width: 2, height: 4 });
    // rotated 90° clockwise: the former left half is now the top half
    expect(img.data[0]).to.be.greaterThan(200);
    expect(img.data[(3 * 2 + 1) * 3]).to.be.lessThan(50);
  });

  it('rejects missing, empty and non-image files with a one-line UserError naming the file', async () => {
    const missing = path.join(dir, 'nope.jpg');
    const empty = path.join(dir, 'empty.jpg');
    fs.writeFileSync(empty, '');
    const text = path.join(dir, 'text.jpg');
    fs.writeFileSync(text, 'this is not an image\n');
    const full = path.join(dir, 'full.jpg');
    const big = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 37) % 256);
    await raw(big, 64, 64, 3).jpeg().toFile(full);
    const trunc = path.join(dir, 'trunc.jpg');
    const bytes = fs.readFileSync(full);
    fs.writeFileSync(trunc, bytes.subarray(0, Math.floor(bytes.length / 2)));
    for (const [f, words] of [[missing, 'not found'], [empty, 'empty'], [text, 'cannot decode'], [trunc, 'cannot decode']] as const) {
      let err: unknown;
      try { await decodeImage(f); } catch (e) { err = e; }
      expect(err, f).to.be.instanceOf(UserError);
      const msg = (err as Error).message;
      expect(msg).to.include(f).and.include(words);
      expect(msg).to.not.include('\n');
    }
    let err: unknown;
    try { await decodeImage(trunc); } catch (e) { err = e; }
    expect((err as Error).message).to.include('truncated');
  });

  it('accepts a JPEG whose only defect is a missing end marker (all pixels present), as viewers do', async () => {
    const full = path.join(dir, 'whole.jpg');
    const big = new Uint8Array(64 * 48 * 3).map((_, i) => (i * 11) % 256);
    await raw(big, 64, 48, 3).jpeg({ quality: 90 }).toFile(full);
    const bytes = fs.readFileSync(full);
    expect(Array.from(bytes.subarray(bytes.length - 2))).to.deep.equal([0xff, 0xd9]);
    const noEoi = path.join(dir, 'no-eoi.jpg');
    fs.writeFileSync(noEoi, bytes.subarray(0, bytes.length - 2));
    const a = await decodeImage(full), b = await decodeImage(noEoi);
    expect([b.width, b.height]).to.deep.equal([64, 48]);
    expect(Buffer.from(b.data).equals(Buffer.from(a.data))).to.equal(true);
  });
});

describe('data/preprocess', () => {
  before(useEngine);
  // Hand-computed expectations for pixel (10, 20, 30) and (200, 100, 50).
  const px = Uint8Array.from([10, 20, 30, 200, 100, 50]);
  const expected = {
    caffe: [30 - 103.939, 20 - 116.779, 10 - 123.68, 50 - 103.939, 100 - 116.779, 200 - 123.68],
    torch: [
      (10 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225,
      (200 / 255 - 0.485) / 0.229, (100 / 255 - 0.456) / 0.224, (50 / 255 - 0.406) / 0.225,
    ],
    unit: [10 / 255, 20 / 255, 30 / 255, 200 / 255, 100 / 255, 50 / 255],
  };
  for (const mode of ['caffe', 'torch', 'unit'] as const) {
    it(`${mode}: pixel array and tf op match hand-computed values`, () => {
      const a = preprocessPixels(px, mode);
      a.forEach((v, i) => expect(v).to.be.closeTo(expected[mode][i], 1e-4));
      const t = tf.tensor4d(Array.from(px), [1, 1, 2, 3]);
      const out = preprocessTensor(t, mode);
      Array.from(out.dataSync()).forEach((v, i) => expect(v).to.be.closeTo(expected[mode][i], 1e-4));
      tf.dispose([t, out]);
      expect(Array.from(deprocessPixels(a, mode))).to.deep.equal(Array.from(px));
    });
  }
  it('the tf op does not leak tensors', async () => {
    const t = tf.zeros([2, 4, 4, 3]);
    await expectNoTensorLeak(() => { preprocessTensor(t, 'caffe').dispose(); preprocessTensor(t, 'torch').dispose(); });
    t.dispose();
  });
});
