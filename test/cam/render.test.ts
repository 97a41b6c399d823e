import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { applyColormap, colormapLut, parseColormap } from '../../src/render/colormap.js';
import { blend, drawBoxes, renderOverlay, renderStrip, mapToSize } from '../../src/render/overlay.js';
import { galleryHtml } from '../../src/render/gallery.js';
import type { DecodedImage } from '../../src/data/image.js';

function solid(width: number, height: number, rgb: [number, number, number]): DecodedImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, i * 3);
  return { data, width, height };
}

describe('render: colormaps, overlays, strips, gallery HTML', () => {
  before(useEngine);

  it('jet and viridis have matplotlib end points', () => {
    const jet = colormapLut('jet');
    expect(Array.from(jet.slice(0, 3))).to.deep.equal([0, 0, 128]); // (0, 0, 0.5)
    expect(Array.from(jet.slice(765, 768))).to.deep.equal([128, 0, 0]); // (0.5, 0, 0)
    const vir = colormapLut('viridis');
    expect(Array.from(vir.slice(0, 3))).to.deep.equal([0x44, 0x01, 0x54]);
    expect(Array.from(vir.slice(765, 768))).to.deep.equal([0xfd, 0xe7, 0x25]);
    // values are clamped: below 0 → first colour, above 1 → last
    expect(Array.from(applyColormap(new Float32Array([-3, 7]), 'viridis'))).to.deep.equal([0x44, 0x01, 0x54, 0xfd, 0xe7, 0x25]);
    expect(() => parseColormap('hot')).to.throw(/--colormap: expected one of jet, viridis; got 'hot'/);
  });

  it('blends (1 − α)·image + α·colour and draws inclusive boxes', () => {
    const img = solid(4, 3, [100, 200, 0]);
    const map = new Float32Array(12).fill(1); // jet(1) = (128, 0, 0)
    const out = blend(img, map, 'jet', 0.25);
    expect(Array.from(out.slice(0, 3))).to.deep.equal([Math.round(0.75 * 100 + 0.25 * 128), Math.round(0.75 * 200), 0]);
    const px = new Uint8Array(10 * 8 * 3);
    drawBoxes(px, 10, 8, [{ box: [2, 1, 6, 5], color: [255, 0, 0] }], 1);
    const at = (x: number, y: number) => px[(y * 10 + x) * 3];
    expect([at(2, 1), at(6, 1), at(2, 5), at(6, 5), at(4, 1), at(2, 3)]).to.deep.equal([255, 255, 255, 255, 255, 255]);
    expect([at(4, 3), at(1, 1), at(7, 5), at(3, 2)]).to.deep.equal([0, 0, 0, 0]);
  });

  it('overlays are PNGs at the original size; the strip has one tile per class plus the photo', async () => {
    const img = solid(37, 23, [10, 20, 30]);
    const map = mapToSize(new Float32Array([0, 1, 2, 3]), 2, 2, 37, 23);
    expect(Math.min(...map)).to.equal(0);
    expect(Math.max(...map)).to.equal(1);
    const png = await renderOverlay(img, map, { colormap: 'viridis', opacity: 0.6, boxes: [{ box: [1, 1, 20, 10], color: [0, 255, 0] }] });
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).to.deep.equal(['png', 37, 23]);
    const strip = await renderStrip(img, [{ map, label: 'a <b>', score: 0.5 }, { map, label: 'c', score: 0.25 }], { tileHeight: 46 });
    const sm = await sharp(strip).metadata();
    // tiles 74 px wide (37/23 · 46), 3 tiles, 6 px gaps; 46 px + 40 px caption + 2 gaps high
    expect([sm.width, sm.height]).to.deep.equal([3 * 74 + 4 * 6, 46 + 40 + 12]);
  });

  it('the gallery page escapes text, links every picture relatively and sorts by IoU or score', () => {
    const html = galleryHtml({ title: 'T <1>', facts: [['model', 'm&m']] }, [
      { id: 'a/b c', original: 'originals/a.jpg', overlays: [{ label: 'cam', path: 'overlays/a b.png' }], className: '<x>', score: 0.9, iou: 0.7 },
      { id: 'z', original: 'originals/z.jpg', overlays: [{ label: 'cam', path: 'overlays/z.png' }], className: 'y', score: 0.1 },
    ]);
    expect(html).to.include('T &lt;1&gt;').and.include('m&amp;m').and.include('&lt;x&gt;');
    expect(html).to.include('src="overlays/a%20b.png"');
    expect(html).to.include("sortCards('iou',-1)").and.include("sortCards('score',-1)");
    expect(html).to.not.match(/https?:\/\//);
    expect((html.match(/<figure /g) ?? []).length).to.equal(2);
    tf.memory(); // engine in use
  });
});
