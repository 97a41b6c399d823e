import { expect } from 'chai';
import seedrandom from 'seedrandom';
import { useEngine } from '../helpers.js';
import {
  type Box,
  boxArea,
  checkBoxConvention,
  connectedComponents,
  iou,
  mapBoxToOriginal,
  maskBoxes,
  maxIou,
  normalizeScoremap,
  resizeMapping,
  xywhToBox,
} from '../../src/eval/boxes.js';
import { mapOf } from './maps.js';


function maskOf(rows: string[]): { mask: Uint8Array; width: number; height: number } {
  const width = rows[0].length;
  return { mask: Uint8Array.from(rows.join('').split(''), (c) => (c === '#' ? 1 : 0)), width, height: rows.length };
}

describe('eval/boxes', () => {
  before(useEngine);

  describe('IoU with inclusive corners', () => {
    it('counts a one-pixel box as area 1 and identical boxes as IoU 1', () => {
      expect(boxArea([5, 5, 5, 5])).to.equal(1);
      expect(boxArea([0, 0, 9, 4])).to.equal(50);
      expect(iou([0, 0, 0, 0], [0, 0, 0, 0])).to.equal(1);
      expect(iou([3, 4, 10, 12], [3, 4, 10, 12])).to.equal(1);
    });
    it('overlapping by one pixel: 1 / (4 + 4 - 1)', () => {
      expect(iou([0, 0, 1, 1], [1, 1, 2, 2])).to.be.closeTo(1 / 7, 1e-12);
    });
    it('adjacent boxes do not overlap', () => {
      expect(iou([0, 0, 1, 1], [2, 0, 3, 1])).to.equal(0);
      expect(iou([0, 0, 1, 1], [0, 2, 1, 3])).to.equal(0);
    });
    it('a half-width box inside a box: 50 / 100', () => {
      expect(iou([0, 0, 9, 9], [0, 0, 4, 9])).to.equal(0.5);
    });
    it('accepts fractional ground-truth corners with the same formula', () => {
      // widths 10.5 and 5.5 (x1 - x0 + 1); intersection 5.5 × 10
      expect(iou([0, 0, 9.5, 9], [5, 0, 9.5, 9])).to.be.closeTo((5.5 * 10) / (10.5 * 10), 1e-12);
    });
    it('maxIou takes the best pair and is 0 for no prediction', () => {
      const gt: Box[] = [[0, 0, 1, 1], [10, 10, 19, 19]];
      expect(maxIou([[10, 10, 19, 14], [0, 0, 3, 3]], gt)).to.equal(0.5);
      expect(maxIou([], gt)).to.equal(0);
    });
    it('xywhToBox converts pixel counts to inclusive corners', () => {
      expect(xywhToBox([2, 3, 4, 5])).to.deep.equal([2, 3, 5, 7]);
    });
  });

  describe('checkBoxConvention', () => {
    it('accepts x0y0x1y1 boxes, including one-pixel ones', () => {
      expect(() => checkBoxConvention([[0, 0, 0, 0], [1, 2, 3, 4]])).not.to.throw();
      expect(() => checkBoxConvention([1, 2, 3, 4])).not.to.throw();
    });
    it('rejects negative widths, negative coordinates and NaN with one line naming the box', () => {
      expect(() => checkBoxConvention([[3, 0, 2, 5]], 'x0y0x1y1', 'gt box of img7')).to.throw(/gt box of img7: box \[3, 0, 2, 5\] does not follow the x0y0x1y1/);
      expect(() => checkBoxConvention([[-1, 0, 2, 5]])).to.throw(/non-negative/);
      expect(() => checkBoxConvention([[0, 0, NaN, 5]])).to.throw(/4 finite numbers/);
      expect(() => checkBoxConvention([[0, 0, 5, 5]], 'xywh')).not.to.throw();
    });
  });

  describe('normalizeScoremap', () => {
    it('min-max normalises any sign, including a map whose maximum is negative', () => {
      const n = normalizeScoremap(mapOf([[-5, -3], [-4, -1]]));
      expect(Array.from(n.data)).to.deep.equal([0, 0.5, 0.25, 1]);
    });
    it('turns a constant map or one with NaN into zeros', () => {
      expect(Array.from(normalizeScoremap(mapOf([[2, 2], [2, 2]])).data)).to.deep.equal([0, 0, 0, 0]);
      expect(Array.from(normalizeScoremap(mapOf([[1, NaN], [0, 2]])).data)).to.deep.equal([0, 0, 0, 0]);
    });
  });

  describe('connected components (8-connectivity)', () => {
    it('two blobs: the larger wins, whatever its position', () => {
      const { mask, width, height } = maskOf([
        '##......',
        '##......',
        '....####',
        '....####',
        '.....###',
      ]);
      const comps = connectedComponents(mask, width, height);
      expect(comps.map((c) => c.area)).to.deep.equal([4, 11]);
      expect(maskBoxes(mask, width, height, 'largest')).to.deep.equal([[4, 2, 7, 4]]);
      expect(maskBoxes(mask, width, height, 'all')).to.deep.equal([[0, 0, 1, 1], [4, 2, 7, 4]]);
    });
    it('diagonal neighbours join (8-connectivity), a U shape is one component', () => {
      const diag = maskOf(['#..', '.#.', '..#']);
      expect(maskBoxes(diag.mask, 3, 3, 'all')).to.deep.equal([[0, 0, 2, 2]]);
      const u = maskOf(['#...#', '#...#', '#####']);
      expect(connectedComponents(u.mask, 5, 3)).to.have.length(1);
    });
    it('a blob on the border keeps its border coordinates', () => {
      const { mask, width, height } = maskOf([
        '......',
        '.....#',
        '....##',
        '....##',
      ]);
      expect(maskBoxes(mask, width, height, 'largest')).to.deep.equal([[4, 1, 5, 3]]);
      const full = maskOf(['###', '###']);
      expect(maskBoxes(full.mask, 3, 2, 'largest')).to.deep.equal([[0, 0, 2, 1]]);
    });
    it('equal areas: the component met first in raster order wins', () => {
      const { mask, width, height } = maskOf(['...##', '##...']);
      expect(maskBoxes(mask, width, height, 'largest')).to.deep.equal([[3, 0, 4, 0]]);
    });
    it('an empty mask gives no box', () => {
      expect(maskBoxes(new Uint8Array(12), 4, 3, 'largest')).to.deep.equal([]);
      expect(maskBoxes(new Uint8Array(12), 4, 3, 'all')).to.deep.equal([]);
    });
    it('agrees with a flood fill on random masks', () => {
      const rng = seedrandom('cc');
      for (let trial = 0; trial < 30; trial++) {
        const w = 1 + Math.floor(rng() * 20);
        const h = 1 + Math.floor(rng() * 20);
        const p = rng();
        const mask = Uint8Array.from({ length: w * h }, () => (rng() < p ? 1 : 0));
        // reference: BFS flood fill
        const seen = new Uint8Array(w * h);
        const ref: { area: number; box: Box }[] = [];
        for (let i = 0; i < w * h; i++) {
          if (!mask[i] || seen[i]) continue;
          const queue = [i];
          seen[i] = 1;
          const box: Box = [i % w, Math.floor(i / w), i % w, Math.floor(i / w)];
          let area = 0;
          while (queue.length) {
            const j = queue.pop()!;
            area++;
            const x = j % w, y = Math.floor(j / w);
            box[0] = Math.min(box[0], x); box[1] = Math.min(box[1], y);
            box[2] = Math.max(box[2], x); box[3] = Math.max(box[3], y);
            for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
              const xx = x + dx, yy = y + dy;
              if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
              const k = yy * w + xx;
              if (mask[k] && !seen[k]) { seen[k] = 1; queue.push(k); }
            }
          }
          ref.push({ area, box });
        }
        const got = connectedComponents(mask, w, h);
        expect(got.map((c) => ({ area: c.area, box: c.box }))).to.deep.equal(ref);
      }
    });
  });

  describe('mapBoxToOriginal', () => {
    it('is the identity at scale 1 and expands blocks at integer scales', () => {
      const m1 = resizeMapping({ width: 4, height: 4 }, 4, 4);
      expect(mapBoxToOriginal([1, 2, 3, 3], m1)).to.deep.equal([1, 2, 3, 3]);
      const m2 = resizeMapping({ width: 8, height: 12 }, 4, 4); // x ×2, y ×3
      expect(mapBoxToOriginal([1, 1, 2, 2], m2)).to.deep.equal([2, 3, 5, 8]);
      expect(mapBoxToOriginal([0, 0, 3, 3], m2)).to.deep.equal([0, 0, 7, 11]);
    });
    it('maps the continuous extent exactly at fractional scales (fractional corners, exact areas)', () => {
      const m = resizeMapping({ width: 6, height: 3 }, 4, 2); // x ×1.5, y ×1.5
      // grid column 1 spans edges [1, 2) → [1.5, 3) on the image → inclusive [1.5, 2], width 1.5
      const b = mapBoxToOriginal([1, 0, 1, 0], m);
      expect(b).to.deep.equal([1.5, 0, 2, 0.5]);
      expect(boxArea(b)).to.equal(1.5 * 1.5);
      // the whole grid is the whole image
      expect(mapBoxToOriginal([0, 0, 3, 1], m)).to.deep.equal([0, 0, 5, 2]);
      // downscale: grid of 10 on an image of 5 (×0.5): columns 2..3 span [1, 2) → column 1
      const d = resizeMapping({ width: 5, height: 5 }, 10, 10);
      expect(mapBoxToOriginal([2, 2, 3, 3], d)).to.deep.equal([1, 1, 1, 1]);
    });
    it('applies offsets (centre crops) and clips to the image', () => {
      const m = { scaleX: 1, scaleY: 1, offsetX: 10, offsetY: 5, width: 20, height: 12 };
      expect(mapBoxToOriginal([0, 0, 3, 3], m)).to.deep.equal([10, 5, 13, 8]);
      expect(mapBoxToOriginal([0, 0, 15, 15], m)).to.deep.equal([10, 5, 19, 11]);
    });
  });
});
