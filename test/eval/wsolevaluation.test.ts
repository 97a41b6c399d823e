// gapcam's `wsolevaluation` protocol against OpenCV and wsolevaluation's BoxEvaluator logic run by
// fixtures/make-wsolevaluation.py (OpenCV version recorded in the JSON): contours, areas, bounding rects, hierarchy
// and order exactly; per-τ correct counts and MaxBoxAcc at IoU 30/50/70 exactly. PxAP against a direct computation.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type { Box } from '../../src/data/types.js';
import { findContours } from '../../src/eval/contours.js';
import { MaxBoxAccEvaluator, camThresholds } from '../../src/eval/localization.js';
import { PxapEvaluator, identityMapping, resizeCubic, wsolBoxes, wsolResizeBox, wsolScoremap } from '../../src/eval/wsolevaluation.js';

interface Fixture {
  opencv: string;
  contours: { width: number; height: number; mask: string; contours: { area: number; rect: number[]; parent: number }[] }[];
  box: {
    images: { width: number; height: number; scoremap: string; imageSize: [number, number]; gtBoxes: Box[]; resizedGtBoxes: Box[] }[];
    results: Record<string, Record<'largest' | 'multi', Record<'30' | '50' | '70', { correct: number[]; maxBoxAcc: number }>>>;
  };
}

const fx = JSON.parse(fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'wsolevaluation.json'), 'utf8')) as Fixture;
const bytes = (b64: string): Buffer => Buffer.from(b64, 'base64');
const f32 = (b64: string): Float32Array => {
  const b = bytes(b64);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

describe(`eval: the wsolevaluation protocol against OpenCV ${fx.opencv} (wsolevaluation.json)`, () => {
  it(`findContours(RETR_TREE) + contourArea + boundingRect: the same contours, in the same order, on ${fx.contours.length} masks`, () => {
    fx.contours.forEach((c, k) => {
      const mine = findContours(new Uint8Array(bytes(c.mask)), c.width, c.height).map((x) => ({ area: x.area, rect: x.rect, parent: x.parent }));
      expect(mine, `mask ${k} (${c.width}×${c.height})`).to.deep.equal(c.contours);
    });
  });

  it('holes are contours whose parent is the enclosing border; a one-pixel blob and a one-pixel-wide line have area 0', () => {
    const m = new Uint8Array(7 * 7);
    for (let y = 1; y < 6; y++) for (let x = 1; x < 6; x++) m[y * 7 + x] = 1;
    m[3 * 7 + 3] = 0;
    const c = findContours(m, 7, 7);
    expect(c.map((x) => [x.isHole, x.parent, x.area])).to.deep.equal([[false, -1, 16], [true, 0, 2]]);
    const line = new Uint8Array(5 * 5);
    for (let x = 0; x < 5; x++) line[2 * 5 + x] = 1;
    line[0] = 1;
    expect(findContours(line, 5, 5).map((x) => [x.area, x.rect])).to.deep.equal([[0, [0, 2, 5, 1]], [0, [0, 0, 1, 1]]]);
  });

  it('resize_bbox: corners scaled to the evaluation size and truncated', () => {
    for (const im of fx.box.images) {
      expect(im.gtBoxes.map((b) => wsolResizeBox(b, im.imageSize, [im.width, im.height]))).to.deep.equal(im.resizedGtBoxes);
    }
  });

  for (const interval of Object.keys(fx.box.results)) {
    for (const mode of ['largest', 'multi'] as const) {
      it(`BoxEvaluator, cam_curve_interval ${interval}, multi_contour_eval ${mode === 'multi'}: per-τ correct counts and MaxBoxAcc at IoU 30/50/70 exactly (${fx.box.images.length} maps)`, () => {
        const thresholds = camThresholds(Number(interval));
        const ev = new MaxBoxAccEvaluator({ thresholds, iouThresholds: [0.3, 0.5, 0.7], boxes: mode === 'multi' ? 'all' : 'largest' });
        for (const im of fx.box.images) {
          const boxes = wsolBoxes({ data: f32(im.scoremap), width: im.width, height: im.height }, thresholds);
          ev.accumulateBoxes(mode === 'multi' ? boxes.all : boxes.largest, im.resizedGtBoxes, identityMapping(im.width, im.height));
        }
        const r = ev.compute();
        (['30', '50', '70'] as const).forEach((d, k) => {
          const ref = fx.box.results[interval][mode][d];
          expect(r.perIou[k].accuracies.map((a) => Math.round((a * r.count) / 100)), `IoU ${d}`).to.deep.equal(ref.correct);
          expect(r.perIou[k].accuracies, `IoU ${d}`).to.deep.equal(ref.correct.map((c) => (c * 100) / r.count));
          expect(r.perIou[k].maxBoxAcc, `IoU ${d}`).to.equal(ref.maxBoxAcc);
        });
      });
    }
  }

  it('an empty binarisation gives the [0, 0, 0, 0] fallback box (it scores on a tiny corner box)', () => {
    const data = new Float32Array(12 * 12);
    data[11 * 12 + 11] = 1;
    const b = wsolBoxes({ data, width: 12, height: 12 }, [0, 0.5]);
    expect(b.largest[0]).to.deep.equal([[11, 11, 11, 11]]);
    const zero = wsolBoxes({ data: new Float32Array(16), width: 4, height: 4 }, [0, 0.5]);
    expect(zero.largest).to.deep.equal([[[0, 0, 0, 0]], [[0, 0, 0, 0]]]);
    expect(zero.all).to.deep.equal([[[0, 0, 0, 0]], [[0, 0, 0, 0]]]);
  });
});

describe('eval: PxAP (wsolevaluation MaskEvaluator) on hand-made masks', () => {
  /** Direct computation: for each τ (highest first) TP/FP = pixels scoring ≥ τ; AP = Σ P_k (R_k − R_{k−1}). */
  function direct(maps: Float32Array[], masks: Uint8Array[], thresholds: number[]): number {
    const cuts = [3, 2, 1, ...thresholds.slice().reverse()];
    let numPos = 0;
    for (const m of masks) for (const v of m) if (v === 1) numPos++;
    let auc = 0;
    let prevR = 0;
    cuts.forEach((t, k) => {
      let tp = 0, fp = 0;
      maps.forEach((s, j) => s.forEach((v, i) => {
        if (v < t) return;
        if (masks[j][i] === 1) tp++;
        else if (masks[j][i] === 0) fp++;
      }));
      const r = tp / numPos;
      if (k > 0 && tp + fp > 0) auc += (tp / (tp + fp)) * (r - prevR);
      prevR = r;
    });
    return auc * 100;
  }

  it('equals the direct precision-recall computation, ignoring pixels marked 255', () => {
    const thresholds = camThresholds(0.1);
    const maps = [
      Float32Array.from([0, 0.15, 0.95, 1, 0.5, 0.5, 0.35, 0.05, 0.75]),
      Float32Array.from([1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]),
      Float32Array.from([0.2, 0.2, 0.2, 0.2, 1, 0.2, 0.2, 0.2, 0.2]),
    ];
    const masks = [
      Uint8Array.from([0, 0, 1, 1, 1, 0, 255, 0, 1]),
      Uint8Array.from([1, 1, 0, 1, 0, 0, 0, 0, 255]),
      Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0]),
    ];
    const ev = new PxapEvaluator(thresholds);
    maps.forEach((m, i) => ev.accumulate({ data: m, width: 3, height: 3 }, { data: masks[i], width: 3, height: 3 }));
    const want = direct(maps, masks, thresholds);
    expect(ev.compute()).to.be.closeTo(want, 1e-9);
    expect(ev.compute()).to.be.within(50, 100);
    // a perfect map: every foreground pixel above every background pixel
    const perfect = new PxapEvaluator(thresholds);
    perfect.accumulate({ data: Float32Array.from([1, 0.95, 0.1, 0]), width: 2, height: 2 }, { data: Uint8Array.from([1, 1, 0, 0]), width: 2, height: 2 });
    expect(perfect.compute()).to.be.closeTo(100, 1e-9);
    // no foreground pixel: undefined
    const none = new PxapEvaluator(thresholds);
    none.accumulate({ data: Float32Array.from([1, 0]), width: 2, height: 1 }, { data: Uint8Array.from([0, 0]), width: 2, height: 1 });
    expect(Number.isNaN(none.compute())).to.equal(true);
  });
});

describe(`eval: the wsolevaluation score map (cv2.resize INTER_CUBIC + normalize_scoremap, OpenCV ${fx.opencv})`, () => {
  const f64 = (b64: string): Float64Array => {
    const b = bytes(b64);
    return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  for (const r of (fx as unknown as { resize: { width: number; height: number; dstWidth: number; dstHeight: number; cam: string; resized: string; normalized: string }[] }).resize) {
    it(`${r.width}×${r.height} → ${r.dstWidth}×${r.dstHeight}: bit for bit`, () => {
      const cam = { data: f32(r.cam), width: r.width, height: r.height };
      const mine = resizeCubic(cam, r.dstWidth, r.dstHeight);
      const want = f64(r.resized);
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(mine[i] - want[i]));
      expect(maxDiff).to.equal(0);
      expect(Array.from(wsolScoremap(cam, r.dstWidth, r.dstHeight).data)).to.deep.equal(Array.from(f64(r.normalized)));
    });
  }
});
