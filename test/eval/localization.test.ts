import { expect } from 'chai';
import seedrandom from 'seedrandom';
import { useEngine } from '../helpers.js';
import { type Box, type ScoreMap, maskBoxes, normalizeScoremap, resizeMapping } from '../../src/eval/boxes.js';
import {
  LocalizationAccuracy,
  MaxBoxAccEvaluator,
  camThresholds,
  centerGaussianMap,
  maxBoxAccEvaluator,
  maxBoxAccV2Evaluator,
  ruleBoxes,
  ruleIou,
  sweepBoxes,
  sweepMask,
} from '../../src/eval/localization.js';
import { mapOf } from './maps.js';

const identity4 = resizeMapping({ width: 4, height: 4 }, 4, 4);

// Three hand-made 4×4 maps (identity mapping) and their GT boxes.
// A: the 2×2 block at top-left is the object; a weaker single pixel at the corner.
const mapA = mapOf([
  [1, 1, 0, 0],
  [1, 1, 0, 0],
  [0, 0, 0, 0],
  [0, 0, 0, 0.6],
]);
const gtA: Box[] = [[0, 0, 1, 1]];
// B: the strongest blob is a distractor; the object is the weaker 2-pixel blob at the bottom.
const mapB = mapOf([
  [1, 1, 0, 0],
  [1, 1, 0, 0],
  [0, 0, 0, 0],
  [0, 0, 0.6, 0.6],
]);
const gtB: Box[] = [[2, 3, 3, 3]];
// C: all zero; the object fills the image.
const mapC = mapOf([
  [0, 0, 0, 0],
  [0, 0, 0, 0],
  [0, 0, 0, 0],
  [0, 0, 0, 0],
]);
const gtC: Box[] = [[0, 0, 3, 3]];
const tau = [0, 0.25, 0.5, 0.75];

describe('eval/localization', () => {
  before(useEngine);

  describe("the paper's rule", () => {
    it('two blobs above 20 %: the larger one is boxed', () => {
      const m = mapOf([
        [0.9, 0.9, 0, 0, 0, 0],
        [0, 0, 0, 0.5, 0.5, 0.5],
        [0, 0, 0, 0.5, 1.0, 0.5],
        [0, 0.1, 0, 0, 0, 0],
      ]);
      expect(ruleBoxes(m)).to.deep.equal([[3, 1, 5, 2]]);
      expect(ruleBoxes(m, { boxes: 'all' })).to.deep.equal([[0, 0, 1, 0], [3, 1, 5, 2]]);
      // 0.1 is below 20 % of the maximum: never part of a box
      expect(ruleBoxes(m, { fraction: 0.05, boxes: 'all' })).to.deep.equal([[0, 0, 1, 0], [3, 1, 5, 2], [1, 3, 1, 3]]);
    });
    it('a blob touching the border', () => {
      const m = mapOf([
        [0, 0, 0, 0.3],
        [0, 0, 0.4, 1],
        [0, 0, 0, 0.9],
      ]);
      expect(ruleBoxes(m)).to.deep.equal([[2, 0, 3, 2]]);
    });
    it('an all-zero (or constant) map has no box and counts as a miss', () => {
      expect(ruleBoxes(mapC)).to.deep.equal([]);
      expect(ruleBoxes(mapOf([[3, 3], [3, 3]]))).to.deep.equal([]);
      expect(ruleBoxes(mapOf([[3, 3], [3, 3]]), { normalization: 'minmax' })).to.deep.equal([]);
      expect(ruleBoxes(mapC, { normalization: 'minmax' })).to.deep.equal([]);
      expect(ruleIou(mapC, gtC, identity4).iou).to.equal(0);
    });
    it('a map whose maximum is negative: no positive evidence, no box (the paper); min-max boxes the least negative region', () => {
      const m = mapOf([
        [-9, -9, -9, -9],
        [-9, -2, -1, -9],
        [-9, -9, -9, -9],
      ]);
      expect(ruleBoxes(m)).to.deep.equal([]);
      expect(ruleIou(m, [[1, 1, 2, 1]], resizeMapping({ width: 4, height: 3 }, 4, 3)).iou).to.equal(0);
      // min-max normalised: -2 → 7/8, -1 → 1, -9 → 0
      expect(ruleBoxes(m, { normalization: 'minmax' })).to.deep.equal([[1, 1, 2, 1]]);
    });
    it("the default compares raw values with fraction · max (negatives never kept); 'minmax' shifts by the minimum", () => {
      const m = mapOf([[-1, 0.19, 0.2, 1]]);
      expect(ruleBoxes(m)).to.deep.equal([[2, 0, 3, 0]]);
      // min-max: (v + 1) / 2 ≥ 0.2 ⇔ v ≥ -0.6
      expect(ruleBoxes(m, { normalization: 'minmax' })).to.deep.equal([[1, 0, 3, 0]]);
    });
    it('ruleIou maps the box to the original image before scoring', () => {
      // map 4×4 on an 8×8 image: the block [0,0,1,1] covers original [0,0,3,3]
      const r = ruleIou(mapA, [[0, 0, 3, 3]], resizeMapping({ width: 8, height: 8 }, 4, 4));
      expect(r.boxes).to.deep.equal([[0, 0, 3, 3]]);
      expect(r.iou).to.equal(1);
    });
  });

  describe('the sweep', () => {
    it('camThresholds is np.arange(0, 1, step)', () => {
      const t = camThresholds(0.01);
      expect(t).to.have.length(100);
      expect(t[0]).to.equal(0);
      expect(t[99]).to.be.closeTo(0.99, 1e-12);
      expect(camThresholds(0.3)).to.deep.equal([0, 0.3, 0.6, 0.8999999999999999]);
    });
    it('rejects maps outside [0, 1] and unsorted thresholds', () => {
      expect(() => sweepBoxes(mapOf([[0, 2]]))).to.throw(/\[0, 1\]/);
      expect(() => sweepBoxes(mapOf([[0, 1]]), { thresholds: [0.5, 0.2] })).to.throw(/ascending/);
    });
    it('hand-made map A, float thresholding: the whole image at τ = 0, then the block', () => {
      const boxes = sweepBoxes(normalizeScoremap(mapA), { thresholds: tau, thresholding: 'float', boxes: 'all' });
      expect(boxes).to.deep.equal([[[0, 0, 3, 3]], [[0, 0, 1, 1], [3, 3, 3, 3]], [[0, 0, 1, 1], [3, 3, 3, 3]], [[0, 0, 1, 1]]]);
    });
    it("hand-made map A, wsolevaluation's uint8 thresholding keeps u8 > ⌊τ·255⌋ (no zero pixel at τ = 0)", () => {
      const boxes = sweepBoxes(normalizeScoremap(mapA), { thresholds: tau, boxes: 'all' });
      expect(boxes).to.deep.equal([[[0, 0, 1, 1], [3, 3, 3, 3]], [[0, 0, 1, 1], [3, 3, 3, 3]], [[0, 0, 1, 1], [3, 3, 3, 3]], [[0, 0, 1, 1]]]);
      // 0.6 → u8 153; ⌊0.6 · 255⌋ = 153 is not > 153: gone at τ = 0.6
      expect(sweepBoxes(normalizeScoremap(mapA), { thresholds: [0.59, 0.6], boxes: 'all' })).to.deep.equal([
        [[0, 0, 1, 1], [3, 3, 3, 3]],
        [[0, 0, 1, 1]],
      ]);
    });
    it('an all-zero map has no box at any threshold, in both modes', () => {
      for (const thresholding of ['float', 'wsol-uint8'] as const) {
        expect(sweepBoxes(mapC, { thresholds: tau, thresholding })).to.deep.equal([[], [], [], []]);
      }
    });
    it('equals labelling every threshold separately, on random maps', () => {
      const rng = seedrandom('sweep');
      for (let trial = 0; trial < 12; trial++) {
        const w = 5 + Math.floor(rng() * 30);
        const h = 5 + Math.floor(rng() * 30);
        const blobs = Array.from({ length: 1 + Math.floor(rng() * 4) }, () => [rng() * w, rng() * h, 1 + rng() * 5, rng()]);
        const data = new Float32Array(w * h);
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
          let v = 0.05 * rng();
          for (const [cx, cy, s, a] of blobs) v += a * Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s));
          data[y * w + x] = v;
        }
        const map: ScoreMap = normalizeScoremap({ data, width: w, height: h });
        const thresholds = camThresholds(0.05);
        for (const thresholding of ['float', 'wsol-uint8'] as const) {
          for (const boxes of ['all', 'largest'] as const) {
            const swept = sweepBoxes(map, { thresholds, boxes, thresholding });
            thresholds.forEach((t, i) => {
              expect(swept[i], `trial ${trial} ${thresholding} ${boxes} τ=${t}`).to.deep.equal(maskBoxes(sweepMask(map, t, thresholding), w, h, boxes));
            });
          }
        }
      }
    });
  });

  describe('MaxBoxAcc and MaxBoxAccV2 on hand-computed cases', () => {
    // Best IoU per τ (float thresholding, τ = 0, .25, .5, .75):
    //   A largest/all: whole image 4/16 = .25, then the block: 1, 1, 1
    //   B largest: whole image 2/16 = .125, then the distractor block: 0, 0, 0
    //   B all:     .125, then the 2-pixel blob: 1, 1, then only the block at .75: 0
    //   C: no box: 0, 0, 0, 0
    it('MaxBoxAcc (IoU .5, largest), float thresholding: 1/3 at τ = .25', () => {
      const ev = new MaxBoxAccEvaluator({ thresholds: tau, thresholding: 'float', boxes: 'largest', iouThresholds: [0.5] });
      expect(Array.from(ev.accumulate(mapA, gtA, identity4))).to.deep.equal([0.25, 1, 1, 1]);
      expect(Array.from(ev.accumulate(mapB, gtB, identity4))).to.deep.equal([0.125, 0, 0, 0]);
      expect(Array.from(ev.accumulate(mapC, gtC, identity4))).to.deep.equal([0, 0, 0, 0]);
      const r = ev.compute();
      expect(r.count).to.equal(3);
      expect(r.perIou[0].accuracies).to.deep.equal([0, 100 / 3, 100 / 3, 100 / 3]);
      expect(r.perIou[0].maxBoxAcc).to.be.closeTo(100 / 3, 1e-9);
      expect(r.perIou[0].bestThreshold).to.equal(0.25);
      expect(r.mean).to.be.closeTo(100 / 3, 1e-9);
    });
    it('MaxBoxAccV2 (IoU .3/.5/.7, all components), float thresholding: 2/3 at τ = .25 for every δ', () => {
      const ev = new MaxBoxAccEvaluator({ thresholds: tau, thresholding: 'float', boxes: 'all', iouThresholds: [0.3, 0.5, 0.7] });
      ev.accumulate(mapA, gtA, identity4);
      expect(Array.from(ev.accumulate(mapB, gtB, identity4))).to.deep.equal([0.125, 1, 1, 0]);
      ev.accumulate(mapC, gtC, identity4);
      const r = ev.compute();
      for (const p of r.perIou) {
        expect(p.accuracies).to.deep.equal([0, 200 / 3, 200 / 3, 100 / 3]);
        expect(p.bestThreshold).to.equal(0.25);
      }
      expect(r.mean).to.be.closeTo(200 / 3, 1e-9);
    });
    it('with wsolevaluation thresholding the best τ moves to 0 (zero pixels are never kept)', () => {
      const v1 = maxBoxAccEvaluator(tau);
      const v2 = maxBoxAccV2Evaluator(tau);
      for (const [m, g] of [[mapA, gtA], [mapB, gtB], [mapC, gtC]] as const) {
        v1.accumulate(m, g, identity4);
        v2.accumulate(m, g, identity4);
      }
      expect(v1.compute().perIou[0]).to.include({ bestThreshold: 0 });
      expect(v1.compute().perIou[0].maxBoxAcc).to.be.closeTo(100 / 3, 1e-9);
      const r2 = v2.compute();
      expect(r2.perIou.map((p) => p.iouThreshold)).to.deep.equal([0.3, 0.5, 0.7]);
      expect(r2.perIou[0].accuracies).to.deep.equal([200 / 3, 200 / 3, 200 / 3, 100 / 3]);
      expect(r2.perIou.map((p) => p.bestThreshold)).to.deep.equal([0, 0, 0]);
      expect(r2.mean).to.be.closeTo(200 / 3, 1e-9);
    });
    it('IoU thresholds differ: a box with IoU .5 counts at .3 and .5 but not .7', () => {
      // map: a 2×4 block; GT: the 4×4 image → IoU 8/16 = .5
      const m = mapOf([
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 0, 0],
      ]);
      const ev = maxBoxAccV2Evaluator([0.5]);
      ev.accumulate(m, [[0, 0, 3, 3]], identity4);
      const r = ev.compute();
      expect(r.perIou.map((p) => p.maxBoxAcc)).to.deep.equal([100, 100, 0]);
      expect(r.mean).to.be.closeTo(200 / 3, 1e-9);
    });
    it('several GT boxes: a hit if any reaches the IoU', () => {
      const ev = maxBoxAccEvaluator([0.5]);
      ev.accumulate(mapA, [[2, 2, 3, 3], [0, 0, 1, 1]], identity4);
      expect(ev.compute().perIou[0].maxBoxAcc).to.equal(100);
    });
  });

  describe('top-1 / top-5 / GT-known loc', () => {
    it('counts each case by hand', () => {
      const acc = new LocalizationAccuracy(0.5);
      const iou = (v: Record<number, number>) => (c: number) => v[c] ?? 0;
      acc.accumulate({ label: 2, ranked: [2, 0, 1, 3, 4, 5], iouOf: iou({ 2: 0.7 }) }); // all three
      acc.accumulate({ label: 1, ranked: [0, 3, 4, 5, 1, 2], iouOf: iou({ 1: 0.5 }) }); // top-5 + gt-known
      acc.accumulate({ label: 1, ranked: [0, 3, 4, 5, 2, 1], iouOf: iou({ 1: 0.9 }) }); // gt-known only (6th)
      acc.accumulate({ label: 0, ranked: [0, 1, 2, 3, 4, 5], iouOf: iou({ 0: 0.49 }) }); // none
      const r = acc.compute();
      expect(r).to.deep.equal({ count: 4, iouThreshold: 0.5, top1Loc: 25, top5Loc: 50, gtKnownLoc: 75 });
    });
  });

  describe('center baseline', () => {
    it('is a centred Gaussian whose boxes are centred at every threshold', () => {
      const g = centerGaussianMap(40, 30);
      const swept = sweepBoxes(normalizeScoremap(g), { thresholds: camThresholds(0.1), boxes: 'all' });
      for (const boxes of swept) {
        expect(boxes).to.have.length(1);
        const [x0, y0, x1, y1] = boxes[0];
        expect(x0 + x1).to.equal(39);
        expect(y0 + y1).to.equal(29);
      }
    });
    it("the paper rule's box covers about 90 % of each side with σ = 0.5", () => {
      const [box] = ruleBoxes(centerGaussianMap(224, 224));
      const side = box[2] - box[0] + 1;
      expect(side / 224).to.be.within(0.85, 0.9);
    });
    it('MaxBoxAcc of the baseline finds the right centred box size', () => {
      // GT: centred box of half the image size on a 20×20 map; a sweep reaches IoU ≥ .7
      const g = centerGaussianMap(20, 20);
      const ev = maxBoxAccV2Evaluator(camThresholds(0.01));
      ev.accumulate(g, [[5, 5, 14, 14]], resizeMapping({ width: 20, height: 20 }, 20, 20));
      expect(ev.compute().perIou.map((p) => p.maxBoxAcc)).to.deep.equal([100, 100, 100]);
    });
  });
});
