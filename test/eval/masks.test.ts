import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { makeTempDir } from '../helpers.js';
import { loadMask } from '../../src/eval/masks.js';
import { UserError } from '../../src/errors.js';

/** A deterministic RGBA picture where some pixels are non-zero in one channel only, some are transparent. */
function rgba(w: number, h: number, seed: number): Uint8Array {
  const d = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    const v = (i * 7919 + seed * 104729) % 97;
    if (v < 30) continue; // all zero, opaque below
    const c = v % 3; // only one colour channel set, to a small value
    d[i * 4 + c] = 1 + (v % 5);
  }
  for (let i = 0; i < w * h; i++) d[i * 4 + 3] = (i * 31 + seed) % 11 === 0 ? 0 : 255; // a few transparent pixels
  return d;
}

/** The expected mask, computed independently: alpha flattened onto white (as every decode does), then "any channel
 *  non-zero", then cv2.resize(INTER_NEAREST): dst(x, y) = src(⌊x·sw/dw⌋, ⌊y·sh/dh⌋). */
function expected(px: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  const on = (x: number, y: number) => {
    const i = (y * sw + x) * 4;
    if (px[i + 3] === 0) return true; // transparent → white → foreground
    return px[i] > 0 || px[i + 1] > 0 || px[i + 2] > 0;
  };
  const out = new Uint8Array(dw * dh);
  for (let y = 0; y < dh; y++) for (let x = 0; x < dw; x++) out[y * dw + x] = on(Math.floor((x * sw) / dw), Math.floor((y * sh) / dh)) ? 1 : 0;
  return out;
}

describe('eval/masks: PxAP ground-truth masks', () => {
  it('a mask is foreground wherever any channel is non-zero, resized as cv2 INTER_NEAREST; the ignore mask marks the rest as 255', async () => {
    const root = makeTempDir();
    const masks = path.join(root, 'masks');
    fs.mkdirSync(path.join(masks, 'sub'), { recursive: true });
    const [sw, sh] = [53, 37];
    const fg = rgba(sw, sh, 1), ig = rgba(sw, sh, 2);
    await sharp(Buffer.from(fg), { raw: { width: sw, height: sh, channels: 4 } }).png().toFile(path.join(masks, 'sub', 'a.png'));
    await sharp(Buffer.from(ig), { raw: { width: sw, height: sh, channels: 4 } }).png().toFile(path.join(masks, 'sub', 'a.ignore.png'));
    for (const [dw, dh] of [[24, 16], [53, 37], [80, 61]]) {
      const m = await loadMask({ path: path.join(root, 'sub', 'a.jpg') }, root, masks, dw, dh);
      const want = expected(fg, sw, sh, dw, dh);
      const ignore = expected(ig, sw, sh, dw, dh);
      for (let i = 0; i < want.length; i++) if (ignore[i] && !want[i]) want[i] = 255;
      expect(m, `${dw}×${dh}`).to.deep.equal({ data: want, width: dw, height: dh });
    }
    // an image without a mask has none
    expect(await loadMask({ path: path.join(root, 'b.jpg') }, root, masks, 8, 8)).to.equal(undefined);
  });

  it('a corrupt mask file is a one-line UserError naming it', async () => {
    const root = makeTempDir();
    fs.mkdirSync(path.join(root, 'masks'));
    fs.writeFileSync(path.join(root, 'masks', 'c.png'), Buffer.from('not a png at all'));
    let err: unknown;
    try { await loadMask({ path: path.join(root, 'c.jpg') }, root, path.join(root, 'masks'), 8, 8); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.include('c.png').and.not.include('\n');
  });
});
