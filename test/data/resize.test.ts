// The plain-JS Lanczos-3 resize shared by `gapcam cam` and the web page: sizes, constants, symmetry, and closeness to
// sharp's (libvips) lanczos3, which `gapcam cam` used before and the training pipeline still uses.
import sharp from 'sharp';
import { expect } from 'chai';
import { resizeRgbLanczos3 } from '../../src/data/resize.js';

function pattern(width: number, height: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = Math.round(127.5 + 127.5 * Math.sin(x / 9) * Math.cos(y / 13));
      data[i + 1] = (x * 255) / (width - 1);
      data[i + 2] = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 3) ** 2 ? 230 : 20;
    }
  }
  return data;
}

describe('data: Lanczos-3 RGB resize (shared with the web page)', () => {
  it('keeps the size when unchanged, a constant image constant, and is mirror-symmetric', () => {
    const img = pattern(40, 30);
    expect(resizeRgbLanczos3(img, 40, 30, 40, 30)).to.equal(img);
    const flat = new Uint8Array(50 * 20 * 3).fill(77);
    for (const [w, h] of [[13, 7], [120, 45]]) expect(new Set(resizeRgbLanczos3(flat, 50, 20, w, h))).to.deep.equal(new Set([77]));
    // a left-right mirrored input gives the mirrored output
    const w = 37, h = 11, ow = 16, oh = 5;
    const src = pattern(w, h);
    const mirrored = new Uint8Array(src.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) mirrored.set(src.subarray((y * w + x) * 3, (y * w + x) * 3 + 3), (y * w + (w - 1 - x)) * 3);
    const a = resizeRgbLanczos3(src, w, h, ow, oh);
    const b = resizeRgbLanczos3(mirrored, w, h, ow, oh);
    for (let y = 0; y < oh; y++) for (let x = 0; x < ow; x++) for (let c = 0; c < 3; c++) {
      expect(Math.abs(a[(y * ow + x) * 3 + c] - b[(y * ow + (ow - 1 - x)) * 3 + c])).to.be.at.most(1);
    }
  });

  it("shrinking stays within half a level of sharp's lanczos3 on average", async () => {
    const [w, h] = [300, 200];
    const src = pattern(w, h);
    for (const [ow, oh] of [[224, 200], [64, 48], [150, 100]]) {
      const theirs = await sharp(Buffer.from(src), { raw: { width: w, height: h, channels: 3 } }).resize(ow, oh, { fit: 'fill' }).raw().toBuffer();
      const mine = resizeRgbLanczos3(src, w, h, ow, oh);
      let sum = 0;
      for (let i = 0; i < mine.length; i++) sum += Math.abs(mine[i] - theirs[i]);
      expect(sum / mine.length, `mean |difference| at ${ow}×${oh}`).to.be.below(0.5);
    }
  });

  it('enlarging samples at half-pixel centres: a ramp stays the ramp away from the borders', () => {
    const [w, h, ow, oh] = [40, 3, 100, 5];
    const src = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) src.fill(60 + 4 * x, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const out = resizeRgbLanczos3(src, w, h, ow, oh);
    for (let x = 10; x < ow - 10; x++) {
      const at = (x + 0.5) * (w / ow) - 0.5; // the input position of output pixel x
      expect(Math.abs(out[(2 * ow + x) * 3] - (60 + 4 * at)), `pixel ${x}`).to.be.at.most(1);
    }
  });
});
