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
import type { GridMapping } from './boxes.js';
import { findContours } from './contours.js';
import { UserError } from '../errors.js';

/** A score map in float32 (gapcam's maps) or float64 (wsolevaluation's, after cv2.resize and normalisation). */
export interface ScoreGrid {
  data: Float32Array | Float64Array;
  width: number;
  height: number;
}

/** wsolevaluation's check_scoremap_validity: width × height finite values in [0, 1]. */
export function checkScoreGrid(map: ScoreGrid, where = 'score map'): void {
  if (map.data.length !== map.width * map.height) throw new UserError(`${where}: expected ${map.width}×${map.height} values, found ${map.data.length}`);
  for (const v of map.data) if (!(v >= 0 && v <= 1)) throw new UserError(`${where}: values must be in [0, 1] (normalise it first), found ${v}`);
}

// ---------------------------------------------------------------------------------------------------------------
// The score map: inference.py's cv2.resize(cam, (W, H), interpolation=cv2.INTER_CUBIC), then normalize_scoremap

/** OpenCV's bicubic weights (interpolateCubic, A = −0.75, computed in float32 as OpenCV does). */
function cubicWeights(x: number): [number, number, number, number] {
  const f = Math.fround;
  const A = -0.75;
  const x1 = f(x + 1);
  const c0 = f(f(f(f(f(f(A * x1) - f(5 * A)) * x1) + f(8 * A)) * x1) - f(4 * A));
  const c1 = f(f(f(f(f((A + 2) * x) - (A + 3)) * x) * x) + 1);
  const ox = f(1 - x);
  const c2 = f(f(f(f(f((A + 2) * ox) - (A + 3)) * ox) * ox) + 1);
  const c3 = f(f(f(1 - c0) - c1) - c2);
  return [c0, c1, c2, c3];
}

/** Source indices and weights of one axis (half-pixel centres, border replicated). */
function cubicAxis(src: number, dst: number): { index: Int32Array; weight: Float64Array } {
  const scale = 1 / (dst / src); // OpenCV: scale_x = 1 / inv_scale_x, inv_scale_x = dsize / ssize
  const index = new Int32Array(dst * 4);
  const weight = new Float64Array(dst * 4);
  for (let d = 0; d < dst; d++) {
    const fx = Math.fround((d + 0.5) * scale - 0.5);
    const sx = Math.floor(fx);
    const w = cubicWeights(Math.fround(fx - sx));
    for (let k = 0; k < 4; k++) {
      index[d * 4 + k] = Math.min(src - 1, Math.max(0, sx + k - 1));
      weight[d * 4 + k] = w[k];
    }
  }
  return { index, weight };
}

/** cv2.resize(src, (dstWidth, dstHeight), interpolation=INTER_CUBIC) of a float64 map: horizontal pass then vertical
 *  pass, in double precision with OpenCV's float32 weights. */
export function resizeCubic(map: ScoreGrid, dstWidth: number, dstHeight: number): Float64Array {
  const { data, width: sw, height: sh } = map;
  const hx = cubicAxis(sw, dstWidth);
  const vy = cubicAxis(sh, dstHeight);
  const rows = new Float64Array(sh * dstWidth);
  for (let y = 0; y < sh; y++) {
    const row = y * sw;
    for (let x = 0; x < dstWidth; x++) {
      const k = x * 4;
      rows[y * dstWidth + x] = data[row + hx.index[k]] * hx.weight[k] + data[row + hx.index[k + 1]] * hx.weight[k + 1] +
        data[row + hx.index[k + 2]] * hx.weight[k + 2] + data[row + hx.index[k + 3]] * hx.weight[k + 3];
    }
  }
  const out = new Float64Array(dstWidth * dstHeight);
  for (let y = 0; y < dstHeight; y++) {
    const k = y * 4;
    const r0 = vy.index[k] * dstWidth, r1 = vy.index[k + 1] * dstWidth, r2 = vy.index[k + 2] * dstWidth, r3 = vy.index[k + 3] * dstWidth;
    const b0 = vy.weight[k], b1 = vy.weight[k + 1], b2 = vy.weight[k + 2], b3 = vy.weight[k + 3];
    for (let x = 0; x < dstWidth; x++) out[y * dstWidth + x] = rows[r0 + x] * b0 + rows[r1 + x] * b1 + rows[r2 + x] * b2 + rows[r3 + x] * b3;
  }
  return out;
}

/** inference.py's normalize_scoremap in float64: cam −= min; cam /= max; NaN or constant → zeros. */
export function wsolNormalize(data: Float64Array): Float64Array {
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    if (v !== v) return new Float64Array(data.length);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === max) return new Float64Array(data.length);
  const out = new Float64Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = data[i] - min;
  let m = -Infinity;
  for (const v of out) if (v > m) m = v;
  for (let i = 0; i < out.length; i++) out[i] /= m;
  return out;
}

/** The score map wsolevaluation evaluates: a CAM at any resolution, cubic-resized to the evaluation size and
 *  normalised, all in float64. */
export function wsolScoremap(cam: ScoreGrid, width: number, height: number): ScoreGrid {
  return { data: wsolNormalize(resizeCubic(cam, width, height)), width, height };
}

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
export function wsolBoxes(normalized: ScoreGrid, thresholds: readonly number[]): WsolBoxes {
  checkScoreGrid(normalized);
  const { width, height, data } = normalized;
  const u8 = new Uint8Array(data.length);
  let maxU8 = 0;
  for (let i = 0; i < data.length; i++) {
    // (scoremap * 255).astype(np.uint8): the value in double precision, times 255, truncated
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
  accumulate(normalized: ScoreGrid, mask: PixelMask): void {
    checkScoreGrid(normalized);
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
