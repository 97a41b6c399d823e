// The `wsolevaluation` protocol: clovaai/wsolevaluation's BoxEvaluator (Choe et al., "Evaluating Weakly Supervised
// Object Localization Methods Right", CVPR 2020, evaluation.py) reproduced exactly, next to gapcam's own geometry
// (localization.ts, the default protocol, which documents why it differs). Per image, at the evaluation size (the
// model's input size, to which the image was resized, as wsolevaluation resizes to 224×224):
//  * GT boxes are resized like `resize_bbox`: each corner × (eval size / image size) in double precision, truncated
//    to an integer;
//  * the min-max normalised score map is quantised, u8 = ⌊255·v⌋, and at every τ of np.arange(0, 1, interval)
//    binarised as cv2.threshold(u8, ⌊τ·max(u8)⌋, THRESH_BINARY) does (u8 > the cut);
//  * boxes come from cv2.findContours(RETR_TREE) (contours.ts): every contour (multi-contour evaluation, holes
//    included) or the one of largest cv2.contourArea (ties: the first in OpenCV's order), each boxed as
//    x, y, x + w, y + h from cv2.boundingRect with x + w and y + h clipped to the last column / row;
//  * no contour at all gives the box [0, 0, 0, 0];
//  * an image is correct at τ and δ when the best IoU (the "+1" formula) of its boxes with its resized GT boxes is
//    ≥ δ; MaxBoxAcc(δ) is the best accuracy over τ. MaxBoxAcc is δ = 0.5 with the largest contour; MaxBoxAccV2 the
//    mean over δ = 0.3, 0.5, 0.7 with every contour.
// PxAP (MaskEvaluator, for mask datasets) lives here too: pixel precision/recall over the same τ grid.
import type { Box } from '../data/types.js';
import { type GridMapping, type ScoreMap } from './boxes.js';
import { findContours } from './contours.js';
import { checkScoremapValidity } from './localization.js';

/** The two protocols every localization number is computed under. */
export const PROTOCOLS = ['gapcam', 'wsolevaluation'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

/** One line per protocol, for reports and --help. */
export const PROTOCOL_DESCRIPTIONS: Record<Protocol, string> = {
  gapcam: 'gapcam: tight component boxes mapped exactly to original pixels, largest = most pixels, no fallback box',
  wsolevaluation: 'wsolevaluation: resized image and boxes, cv2 contours (largest by contourArea), x+w boxes, [0,0,0,0] fallback',
};

/** wsolevaluation's `resize_bbox`: corners scaled from `imageSize` to `resizeSize` (both width, height), truncated. */
export function wsolResizeBox(box: Box, imageSize: [number, number], resizeSize: [number, number]): Box {
  const [iw, ih] = imageSize;
  const [nw, nh] = resizeSize;
  return [Math.trunc((box[0] * nw) / iw), Math.trunc((box[1] * nh) / ih), Math.trunc((box[2] * nw) / iw), Math.trunc((box[3] * nh) / ih)];
}

/** The grid mapping that leaves boxes where they are (boxes and GT boxes both at the evaluation size). */
export function identityMapping(width: number, height: number): GridMapping {
  return { scaleX: 1, scaleY: 1, offsetX: 0, offsetY: 0, width, height };
}

export interface WsolBoxes {
  /** Boxes of the largest contour at every τ (one box each; [0, 0, 0, 0] when nothing survives). */
  largest: Box[][];
  /** Boxes of every contour at every τ. */
  all: Box[][];
}

/** wsolevaluation's `compute_bboxes_from_scoremaps` for both contour modes at once (the contours are shared). */
export function wsolBoxes(normalized: ScoreMap, thresholds: readonly number[]): WsolBoxes {
  checkScoremapValidity(normalized);
  const { width, height, data } = normalized;
  const u8 = new Uint8Array(data.length);
  let maxU8 = 0;
  for (let i = 0; i < data.length; i++) {
    // (scoremap * 255).astype(np.uint8): the float32 value promoted to double, times 255, truncated
    const u = Math.trunc(data[i] * 255);
    u8[i] = u;
    if (u > maxU8) maxU8 = u;
  }
  const largest: Box[][] = [];
  const all: Box[][] = [];
  const mask = new Uint8Array(data.length);
  let lastCut = -1;
  let last: WsolBoxes | undefined;
  for (const t of thresholds) {
    const cut = Math.trunc(t * maxU8);
    if (cut === lastCut && last) {
      // the same binary image as the previous τ
      largest.push(last.largest[0]);
      all.push(last.all[0]);
      continue;
    }
    lastCut = cut;
    for (let i = 0; i < u8.length; i++) mask[i] = u8[i] > cut ? 1 : 0;
    const contours = findContours(mask, width, height);
    const boxOf = (r: [number, number, number, number]): Box => [r[0], r[1], Math.min(r[0] + r[2], width - 1), Math.min(r[1] + r[3], height - 1)];
    let l: Box[];
    let a: Box[];
    if (contours.length === 0) {
      l = [[0, 0, 0, 0]];
      a = [[0, 0, 0, 0]];
    } else {
      let best = contours[0];
      for (const c of contours) if (c.area > best.area) best = c; // Python's max: the first of equal areas
      l = [boxOf(best.rect)];
      a = contours.map((c) => boxOf(c.rect));
    }
    largest.push(l);
    all.push(a);
    last = { largest: [l], all: [a] };
  }
  return { largest, all };
}

// ---------------------------------------------------------------------------------------------------------------
// PxAP (wsolevaluation's MaskEvaluator)

/** A ground-truth mask at the evaluation size: 1 foreground, 0 background, anything else ignored (wsolevaluation
 *  marks the ignore region 255). */
export interface PixelMask {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Pixel average precision: histograms of the normalised score at foreground and at background pixels over the bins
 * [τ_0, τ_1), …, [τ_last, 1), [1, 2), [2, 3] (np.histogram's bins; a score of exactly 1 falls in [1, 2)); at each
 * threshold from the highest down, TP / FP are the pixels scoring at or above it; PxAP = Σ precision_i · (recall_i −
 * recall_{i−1}) over the thresholds where something is predicted, in percent (MaskEvaluator.compute).
 */
/** PxapEvaluator's counts: images and the two score histograms. */
export interface PxapState {
  count: number;
  positive: number[];
  negative: number[];
}

export class PxapEvaluator {
  private readonly edges: number[];
  private readonly pos: Float64Array;
  private readonly neg: Float64Array;
  private count = 0;

  constructor(readonly thresholds: readonly number[]) {
    this.edges = [...thresholds, 1, 2, 3];
    this.pos = new Float64Array(this.edges.length - 1);
    this.neg = new Float64Array(this.edges.length - 1);
  }

  private bin(v: number): number {
    const e = this.edges;
    if (v < e[0] || v > e[e.length - 1]) return -1;
    if (v === e[e.length - 1]) return e.length - 2; // np.histogram's last bin is closed
    let lo = 0;
    let hi = e.length - 1; // the last edge ≤ v
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (e[mid] <= v) lo = mid;
      else hi = mid;
    }
    return lo;
  }

  /** Adds one normalised score map (values in [0, 1]) and its mask, both at the same size. */
  accumulate(normalized: ScoreMap, mask: PixelMask): void {
    checkScoremapValidity(normalized);
    if (mask.width !== normalized.width || mask.height !== normalized.height) {
      throw new Error(`PxAP: mask is ${mask.width}×${mask.height}, score map ${normalized.width}×${normalized.height}`);
    }
    for (let i = 0; i < mask.data.length; i++) {
      const m = mask.data[i];
      if (m !== 0 && m !== 1) continue;
      const b = this.bin(normalized.data[i]);
      if (b < 0) continue;
      (m === 1 ? this.pos : this.neg)[b]++;
    }
    this.count++;
  }

  get images(): number {
    return this.count;
  }

  /** The histograms so far (shards merge by adding them). */
  state(): PxapState {
    return { count: this.count, positive: Array.from(this.pos), negative: Array.from(this.neg) };
  }

  /** Adds histograms accumulated elsewhere over other images (same thresholds). */
  merge(state: PxapState): void {
    if (state.positive.length !== this.pos.length || state.negative.length !== this.neg.length) {
      throw new Error(`PxAP: cannot merge ${state.positive.length} bins into ${this.pos.length}`);
    }
    state.positive.forEach((v, i) => (this.pos[i] += v));
    state.negative.forEach((v, i) => (this.neg[i] += v));
    this.count += state.count;
  }

  /** PxAP in percent; NaN when there is no foreground pixel or no prediction at all. */
  compute(): number {
    const n = this.pos.length;
    let numPos = 0;
    for (let i = 0; i < n; i++) numPos += this.pos[i];
    if (numPos <= 0) return NaN;
    // reversed cumulative sums: index k counts the top k + 1 bins
    let tp = 0, fp = 0;
    let prevRecall = 0;
    let auc = 0;
    let any = false;
    for (let k = 0; k < n; k++) {
      tp += this.pos[n - 1 - k];
      fp += this.neg[n - 1 - k];
      const recall = tp / numPos;
      if (k > 0 && tp + fp !== 0) auc += (tp / (tp + fp)) * (recall - prevRecall);
      if (tp + fp !== 0) any = true;
      prevRecall = recall;
    }
    return any ? auc * 100 : NaN;
  }
}
