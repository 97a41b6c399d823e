// From a class activation map to boxes, and the weakly-supervised localization metrics built on them.
//
// Two ways to turn a score map into boxes:
//  * the CAM paper's rule (Zhou et al. 2016, §3): keep the pixels ≥ `fraction` (0.2) of the map's maximum, take the
//    largest connected component, box it. By default ('max') the rule reads the raw map literally, v ≥ fraction·max,
//    as the paper's code does (it divides the map by its maximum and writes it to an 8-bit image, which clips the
//    negative values, then thresholds at 20 % of 255). A map whose maximum is ≤ 0 has no positive evidence: no pixel
//    qualifies, no box, a miss. `normalization: 'minmax'` applies the rule to the min-max normalised map instead
//    (v ≥ min + fraction·(max − min)), wsolevaluation's normalisation; it differs from 'max' only where the map has
//    negative values (or a positive minimum), and boxes a map whose maximum is negative like any other. In both modes
//    a constant map (all zero included) gives no box.
//  * the wsolevaluation sweep (Choe et al., CVPR 2020, `compute_bboxes_from_scoremaps`): min-max normalise, then for
//    every threshold τ of a grid (np.arange(0, 1, step), step 0.01 by default) binarise and box every connected
//    component ('all', MaxBoxAccV2) or only the largest ('largest', MaxBoxAcc).
//    Binarisation follows wsolevaluation exactly by default ('wsol-uint8'): the normalised map is quantised to
//    u8 = ⌊255·v⌋ and a pixel is kept iff u8 > ⌊τ · max(u8)⌋ (cv2.threshold, THRESH_BINARY). 'float' keeps v ≥ τ.
//
// Deliberate, documented differences from wsolevaluation's code (all of them make gapcam exact, none change the
// definition of the metrics); this is the default 'gapcam' protocol. `--protocol wsolevaluation` (wsolevaluation.ts,
// contours.ts) reproduces wsolevaluation's code instead, bit for bit, deviations included:
//  1. A box is the TIGHT inclusive box of a component's pixels. wsolevaluation builds x1 = x + w from
//     cv2.boundingRect, one pixel past the component (then clips to the image), i.e. its boxes are 1 px too wide
//     and too tall except at the right/bottom border.
//  2. "Largest" means most pixels (ties: first component in raster order); wsolevaluation uses cv2.contourArea,
//     the polygon area of the outer contour, which is smaller by about half the perimeter and 0 for 1-pixel-wide
//     blobs. With RETR_TREE its multi-contour mode also boxes the inner contours of holes; a hole is not an
//     object, so gapcam boxes components only.
//  3. When nothing survives the threshold (an all-zero/constant map, or τ above every value) there is NO box and
//     the image counts as a miss. wsolevaluation substitutes the 1-pixel box [0, 0, 0, 0], which can only hit a
//     ground-truth box of at most 3 pixels touching the corner (IoU ≥ 0.3); gapcam treats that case as a miss.
//  4. Scoring happens in ORIGINAL-image pixels (wsolevaluation scores at 224×224 with resized, truncated GT
//     boxes): boxes found on the map's grid are mapped to the original image exactly with `mapBoxToOriginal`
//     (see boxes.ts: the grid box's continuous extent scaled back, fractional corners allowed), GT boxes stay as
//     annotated.
//
// Metrics (a hit means: the best IoU between the predicted box(es) and any GT box of the image is ≥ δ, δ = 0.5):
//  * GT-known loc: the map of the TRUE class gives a hit (whatever the prediction).
//  * Top-1 loc: the top-1 class is the true class and its map gives a hit.
//  * Top-5 loc: one of the top-5 classes is the true class and that class's map gives a hit (the ILSVRC protocol:
//    only the correct class's box can count, so this is "true class in top-5 and GT-known hit").
//  * MaxBoxAcc: max over τ of the GT-known box accuracy at δ = 0.5, largest component (wsolevaluation default).
//  * MaxBoxAccV2: mean over δ ∈ {0.3, 0.5, 0.7} of (max over τ of the GT-known box accuracy at δ), all components;
//    each δ reports its own best τ.
//  * Center baseline: the same metrics for wsolevaluation's "center-gaussian" score map (an isotropic Gaussian
//    centred on the image, see `centerGaussianMap`), so that every report shows how far above chance the CAMs are.
import type { Box } from '../data/types.js';
import { UserError } from '../errors.js';
import {
  type BoxSelection,
  type GridMapping,
  type ScoreMap,
  checkScoreMap,
  findRoot,
  maskBoxes,
  mapBoxToOriginal,
  maxIou,
  normalizeScoremap,
} from './boxes.js';

/** The CAM paper's box threshold: keep the map where it is at least 20 % of its maximum. The one default of every
 *  command and library call that boxes a CAM. */
export const DEFAULT_CAM_BOX_FRACTION = 0.2;

export type Thresholding = 'wsol-uint8' | 'float';
export type RuleNormalization = 'minmax' | 'max';

// ---------------------------------------------------------------------------------------------------------------
// The paper's rule

export interface RuleOptions {
  /** Keep pixels ≥ fraction · max (after normalisation). Default 0.2. */
  fraction?: number;
  /** Which components become boxes. Default 'largest' (the paper). */
  boxes?: BoxSelection;
  /** 'max' (default, the paper): compare raw values with fraction · max; 'minmax': normalise to [0, 1] first. */
  normalization?: RuleNormalization;
}

/** The binary mask of the paper's rule. */
export function ruleMask(map: ScoreMap, options: RuleOptions = {}): Uint8Array {
  checkScoreMap(map);
  const fraction = options.fraction ?? DEFAULT_CAM_BOX_FRACTION;
  if (!(fraction >= 0 && fraction <= 1)) throw new UserError(`CAM threshold: expected a fraction in [0, 1], found ${fraction}`);
  const mask = new Uint8Array(map.data.length);
  if ((options.normalization ?? 'max') === 'minmax') {
    const norm = normalizeScoremap(map).data;
    let any = false;
    for (let i = 0; i < norm.length && !any; i++) any = norm[i] > 0;
    if (!any) return mask; // constant map: nothing stands out, no box
    for (let i = 0; i < norm.length; i++) mask[i] = norm[i] >= fraction ? 1 : 0;
  } else {
    let max = -Infinity;
    let min = Infinity;
    for (const v of map.data) {
      if (v > max) max = v;
      if (v < min) min = v;
    }
    if (!(max > 0) || !(max > min)) return mask; // no positive evidence, or a constant map: no box
    const t = fraction * max;
    for (let i = 0; i < map.data.length; i++) mask[i] = map.data[i] >= t ? 1 : 0;
  }
  return mask;
}

/** Boxes (on the map's grid) by the paper's rule: [] when no pixel qualifies. */
export function ruleBoxes(map: ScoreMap, options: RuleOptions = {}): Box[] {
  return maskBoxes(ruleMask(map, options), map.width, map.height, options.boxes ?? 'largest');
}

// ---------------------------------------------------------------------------------------------------------------
// The wsolevaluation sweep

/** np.arange(0, 1, step): [0, step, 2·step, …] below 1. */
export function camThresholds(step = 0.01): number[] {
  if (!(step > 0 && step <= 1)) throw new UserError(`CAM threshold step: expected a number in (0, 1], found ${step}`);
  const n = Math.ceil(1 / step - 1e-12);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(i * step);
  return out;
}

/** wsolevaluation's `check_scoremap_validity`: finite values in [0, 1]. */
export function checkScoremapValidity(map: ScoreMap, where = 'score map'): void {
  checkScoreMap(map, where);
  for (const v of map.data) {
    if (!(v >= 0 && v <= 1)) throw new UserError(`${where}: values must be in [0, 1] (normalise it first), found ${v}`);
  }
}

export interface SweepOptions {
  /** Ascending thresholds in [0, 1). Default camThresholds(0.01). */
  thresholds?: number[];
  boxes?: BoxSelection;
  thresholding?: Thresholding;
}

/** For each pixel, how many thresholds (of the ascending list) keep it. Monotone: kept at τ_t ⇒ kept at τ_s, s < t. */
function keepLevels(v: Float32Array, thresholds: readonly number[], mode: Thresholding): Uint16Array {
  const levels = new Uint16Array(v.length);
  const T = thresholds.length;
  let anyPositive = false;
  for (let i = 0; i < v.length && !anyPositive; i++) anyPositive = v[i] > 0;
  // An all-zero map (what normalisation makes of a constant map) has no foreground at any τ, in both modes
  // (wsolevaluation: no contour; 'float' would otherwise keep every pixel at τ = 0).
  if (!anyPositive) return levels;
  if (mode === 'wsol-uint8') {
    let maxU8 = 0;
    for (let i = 0; i < v.length; i++) {
      const u = Math.trunc(v[i] * 255);
      if (u > maxU8) maxU8 = u;
    }
    const cut = thresholds.map((t) => Math.trunc(t * maxU8));
    const table = new Uint16Array(256);
    for (let u = 0; u < 256; u++) {
      let c = 0;
      while (c < T && u > cut[c]) c++;
      table[u] = c;
    }
    for (let i = 0; i < v.length; i++) levels[i] = table[Math.trunc(v[i] * 255)];
  } else {
    for (let i = 0; i < v.length; i++) {
      let lo = 0;
      let hi = T; // count of thresholds ≤ v[i]
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (thresholds[mid] <= v[i]) lo = mid + 1;
        else hi = mid;
      }
      levels[i] = lo;
    }
  }
  return levels;
}

/** The binary mask of one sweep threshold (what `sweepBoxes` computes incrementally), for checks and displays. */
export function sweepMask(normalized: ScoreMap, threshold: number, thresholding: Thresholding = 'wsol-uint8'): Uint8Array {
  const levels = keepLevels(normalized.data, [threshold], thresholding);
  return Uint8Array.from(levels, (l) => (l > 0 ? 1 : 0));
}

/**
 * Boxes (on the map's grid) of the binarised map at every threshold, in one pass: pixels are added from the highest
 * level down and merged with a union-find (8-connectivity), so the whole sweep costs about one labelling instead of
 * one per threshold. Result[t] lists the boxes at thresholds[t] ('all': every component, in raster order of its
 * first pixel; 'largest': the one with the most pixels, ties → first in raster order); [] when nothing is kept.
 * Identical to labelling `sweepMask(map, τ)` with `maskBoxes` for each τ (a test checks this).
 */
export function sweepBoxes(normalized: ScoreMap, options: SweepOptions = {}): Box[][] {
  checkScoremapValidity(normalized);
  const thresholds = options.thresholds ?? camThresholds();
  for (let i = 1; i < thresholds.length; i++) {
    if (!(thresholds[i] > thresholds[i - 1])) throw new UserError(`CAM thresholds: expected a strictly ascending list, found ${thresholds[i - 1]} then ${thresholds[i]}`);
  }
  const selection = options.boxes ?? 'all';
  const { width, height } = normalized;
  const n = width * height;
  const T = thresholds.length;
  const levels = keepLevels(normalized.data, thresholds, options.thresholding ?? 'wsol-uint8');

  // pixels grouped by level (counting sort), highest level first
  const counts = new Int32Array(T + 2);
  for (let i = 0; i < n; i++) counts[levels[i]]++;
  // start[t] = offset in `order` of the pixels whose level is t + 1 (level T first)
  const start = new Int32Array(T + 1);
  for (let t = T - 2; t >= 0; t--) start[t] = start[t + 1] + counts[t + 2];
  const order = new Int32Array(n);
  const fill = start.slice();
  for (let i = 0; i < n; i++) if (levels[i] > 0) order[fill[levels[i] - 1]++] = i;

  const parent = new Int32Array(n).fill(-1);
  const area = new Int32Array(n);
  const bx0 = new Int32Array(n);
  const by0 = new Int32Array(n);
  const bx1 = new Int32Array(n);
  const by1 = new Int32Array(n);
  const roots = new Int32Array(n); // active roots (unordered)
  const rootPos = new Int32Array(n).fill(-1);
  let nRoots = 0;

  const find = (i: number): number => findRoot(parent, i);
  const removeRoot = (r: number): void => {
    const p = rootPos[r];
    const last = roots[--nRoots];
    roots[p] = last;
    rootPos[last] = p;
    rootPos[r] = -1;
  };
  const union = (a: number, b: number): void => {
    let ra = find(a);
    let rb = find(b);
    if (ra === rb) return;
    if (rb < ra) [ra, rb] = [rb, ra]; // the root is the first pixel in raster order
    parent[rb] = ra;
    area[ra] += area[rb];
    if (bx0[rb] < bx0[ra]) bx0[ra] = bx0[rb];
    if (by0[rb] < by0[ra]) by0[ra] = by0[rb];
    if (bx1[rb] > bx1[ra]) bx1[ra] = bx1[rb];
    if (by1[rb] > by1[ra]) by1[ra] = by1[rb];
    removeRoot(rb);
  };

  const result: Box[][] = new Array(T);
  for (let t = T - 1; t >= 0; t--) {
    // add the pixels kept at τ_t but not at τ_{t+1}: level exactly t + 1
    for (let k = start[t]; k < start[t] + counts[t + 1]; k++) {
      const i = order[k];
      const x = i % width;
      const y = (i - x) / width;
      parent[i] = i;
      area[i] = 1;
      bx0[i] = bx1[i] = x;
      by0[i] = by1[i] = y;
      rootPos[i] = nRoots;
      roots[nRoots++] = i;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if ((dx === 0 && dy === 0) || xx < 0 || xx >= width) continue;
          const j = yy * width + xx;
          if (parent[j] >= 0) union(i, j);
        }
      }
    }
    const boxOf = (r: number): Box => [bx0[r], by0[r], bx1[r], by1[r]];
    if (nRoots === 0) {
      result[t] = [];
    } else if (selection === 'all') {
      const rs = Array.from(roots.subarray(0, nRoots)).sort((a, b) => a - b);
      result[t] = rs.map(boxOf);
    } else {
      let best = roots[0];
      for (let k = 1; k < nRoots; k++) {
        const r = roots[k];
        if (area[r] > area[best] || (area[r] === area[best] && r < best)) best = r;
      }
      result[t] = [boxOf(best)];
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Center baseline

/**
 * wsolevaluation's "center-gaussian" sanity baseline: an isotropic Gaussian centred on the image,
 * g(x, y) = exp(−(u² + v²) / (2σ²)) with u, v the pixel centre's position in coordinates where the image spans
 * [−1, 1] on each axis (so the Gaussian is stretched with the image's aspect ratio). Its level sets are centred
 * ellipses, so every threshold gives one centred box with the image's aspect ratio: the sweep metrics (MaxBoxAcc,
 * MaxBoxAccV2) pick the best centred box size and do not depend on σ (beyond the τ grid), while the fixed rule
 * (fraction f of the normalised map) gives one box whose size depends on σ. σ = 0.5 (default) puts the paper
 * rule's box (f = 0.2) at about 90 % of the image's width and height.
 */
export function centerGaussianMap(width: number, height: number, sigma = 0.5): ScoreMap {
  const data = new Float32Array(width * height);
  const s2 = 2 * sigma * sigma;
  for (let y = 0; y < height; y++) {
    const v = ((y + 0.5) / height) * 2 - 1;
    for (let x = 0; x < width; x++) {
      const u = ((x + 0.5) / width) * 2 - 1;
      data[y * width + x] = Math.exp(-(u * u + v * v) / s2);
    }
  }
  return { data, width, height };
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluators (wsolevaluation style: accumulate per image, compute at the end)

export interface MaxBoxAccOptions {
  thresholds?: number[];
  /** IoU thresholds δ. MaxBoxAcc: [0.5]; MaxBoxAccV2: [0.3, 0.5, 0.7]. */
  iouThresholds?: number[];
  boxes?: BoxSelection;
  thresholding?: Thresholding;
}

export interface MaxBoxAccAtIou {
  iouThreshold: number;
  /** Best box accuracy over τ, in percent. */
  maxBoxAcc: number;
  /** The τ reaching it (the first one on ties, like numpy's argmax). */
  bestThreshold: number;
  /** Accuracy (percent) at every τ. */
  accuracies: number[];
}

export interface MaxBoxAccResult {
  count: number;
  boxes: BoxSelection;
  thresholds: number[];
  perIou: MaxBoxAccAtIou[];
  /** Mean of maxBoxAcc over the IoU thresholds (MaxBoxAccV2 with [0.3, 0.5, 0.7]). */
  mean: number;
}

export interface MaxBoxAccState {
  count: number;
  /** correct[d][t]: images whose best IoU at threshold τ_t is ≥ δ_d. */
  correct: number[][];
}

/** wsolevaluation's BoxEvaluator: GT-known box accuracy at every τ and every δ, best over τ. */
export class MaxBoxAccEvaluator {
  readonly thresholds: number[];
  readonly iouThresholds: number[];
  readonly boxes: BoxSelection;
  readonly thresholding: Thresholding;
  private readonly correct: Int32Array[];
  private count = 0;

  constructor(options: MaxBoxAccOptions = {}) {
    this.thresholds = options.thresholds ?? camThresholds();
    this.iouThresholds = options.iouThresholds ?? [0.5];
    this.boxes = options.boxes ?? 'largest';
    this.thresholding = options.thresholding ?? 'wsol-uint8';
    this.correct = this.iouThresholds.map(() => new Int32Array(this.thresholds.length));
  }

  /** Scores one image's map (any range: it is min-max normalised here) against its GT boxes (original pixels);
   *  `mapping` places the map's grid on the original image. Returns the best IoU at every τ. */
  accumulate(map: ScoreMap, gtBoxes: readonly Box[], mapping: GridMapping): Float64Array {
    const perThreshold = sweepBoxes(normalizeScoremap(map), {
      thresholds: this.thresholds,
      boxes: this.boxes,
      thresholding: this.thresholding,
    });
    return this.accumulateBoxes(perThreshold, gtBoxes, mapping);
  }

  /** Same, from boxes already swept (on the map's grid), e.g. a baseline map shared by every image. */
  accumulateBoxes(perThreshold: readonly (readonly Box[])[], gtBoxes: readonly Box[], mapping: GridMapping): Float64Array {
    if (perThreshold.length !== this.thresholds.length) {
      throw new Error(`MaxBoxAccEvaluator: expected boxes for ${this.thresholds.length} thresholds, found ${perThreshold.length}`);
    }
    const best = new Float64Array(this.thresholds.length);
    for (let t = 0; t < perThreshold.length; t++) {
      best[t] = maxIou(perThreshold[t].map((b) => mapBoxToOriginal(b, mapping)), gtBoxes);
      for (let d = 0; d < this.iouThresholds.length; d++) if (best[t] >= this.iouThresholds[d]) this.correct[d][t]++;
    }
    this.count++;
    return best;
  }

  /** The per-threshold hit counts so far: a curve is counts, so shards merge by adding them (never by averaging
   *  percentages). */
  state(): MaxBoxAccState {
    return { count: this.count, correct: this.correct.map((c) => Array.from(c)) };
  }

  /** Adds counts accumulated elsewhere over other images (same thresholds and IoU thresholds). */
  merge(state: MaxBoxAccState): void {
    if (state.correct.length !== this.correct.length || state.correct.some((c) => c.length !== this.thresholds.length)) {
      throw new Error(`MaxBoxAccEvaluator: cannot merge counts of ${state.correct.length}×${state.correct[0]?.length ?? 0} into ${this.correct.length}×${this.thresholds.length}`);
    }
    state.correct.forEach((c, d) => c.forEach((v, t) => (this.correct[d][t] += v)));
    this.count += state.count;
  }

  compute(): MaxBoxAccResult {
    const perIou = this.iouThresholds.map((iouThreshold, d) => {
      const accuracies = Array.from(this.correct[d], (c) => (this.count > 0 ? (c * 100) / this.count : 0));
      let bestT = 0;
      for (let t = 1; t < accuracies.length; t++) if (accuracies[t] > accuracies[bestT]) bestT = t;
      return { iouThreshold, maxBoxAcc: accuracies[bestT] ?? 0, bestThreshold: this.thresholds[bestT] ?? 0, accuracies };
    });
    const mean = perIou.reduce((s, r) => s + r.maxBoxAcc, 0) / Math.max(1, perIou.length);
    return { count: this.count, boxes: this.boxes, thresholds: this.thresholds.slice(), perIou, mean };
  }
}

/** MaxBoxAcc as wsolevaluation defines it: IoU 0.5, largest component. */
export function maxBoxAccEvaluator(thresholds?: number[], thresholding?: Thresholding): MaxBoxAccEvaluator {
  return new MaxBoxAccEvaluator({ thresholds, thresholding, iouThresholds: [0.5], boxes: 'largest' });
}

/** MaxBoxAccV2 as wsolevaluation defines it: IoU 0.3 / 0.5 / 0.7, all components, mean of the three. */
export function maxBoxAccV2Evaluator(thresholds?: number[], thresholding?: Thresholding): MaxBoxAccEvaluator {
  return new MaxBoxAccEvaluator({ thresholds, thresholding, iouThresholds: [0.3, 0.5, 0.7], boxes: 'all' });
}

export interface LocalizationImage {
  label: number;
  /** Classes by descending score (at least the top-1; top-5 loc looks at the first five). */
  ranked: readonly number[];
  /** Best IoU of the boxes of class c's map with the GT boxes, for the true class at least. */
  iouOf: (classId: number) => number;
}

export interface LocalizationAccuracyResult {
  count: number;
  iouThreshold: number;
  /** Percentages. */
  top1Loc: number;
  top5Loc: number;
  gtKnownLoc: number;
}

export interface LocalizationAccuracyState {
  count: number;
  top1: number;
  top5: number;
  gtKnown: number;
}

/** Top-1 / top-5 / GT-known localization accuracy at a fixed box rule (IoU ≥ δ, default 0.5). */
export class LocalizationAccuracy {
  private count = 0;
  private top1 = 0;
  private top5 = 0;
  private gtKnown = 0;

  constructor(readonly iouThreshold = 0.5, readonly k = 5) {}

  /** Returns whether the true class's map gave a hit. */
  accumulate(img: LocalizationImage): boolean {
    const hit = img.iouOf(img.label) >= this.iouThreshold;
    this.count++;
    if (hit) {
      this.gtKnown++;
      if (img.ranked[0] === img.label) this.top1++;
      if (img.ranked.slice(0, this.k).includes(img.label)) this.top5++;
    }
    return hit;
  }

  state(): LocalizationAccuracyState {
    return { count: this.count, top1: this.top1, top5: this.top5, gtKnown: this.gtKnown };
  }

  /** Adds counts accumulated elsewhere over other images. */
  merge(state: LocalizationAccuracyState): void {
    this.count += state.count;
    this.top1 += state.top1;
    this.top5 += state.top5;
    this.gtKnown += state.gtKnown;
  }

  compute(): LocalizationAccuracyResult {
    const pct = (c: number): number => (this.count > 0 ? (c * 100) / this.count : 0);
    return { count: this.count, iouThreshold: this.iouThreshold, top1Loc: pct(this.top1), top5Loc: pct(this.top5), gtKnownLoc: pct(this.gtKnown) };
  }
}

/** Best IoU of a map's boxes (paper rule on the map's grid, mapped to the original image) with the GT boxes. */
export function ruleIou(map: ScoreMap, gtBoxes: readonly Box[], mapping: GridMapping, options: RuleOptions = {}): { iou: number; boxes: Box[] } {
  const boxes = ruleBoxes(map, options).map((b) => mapBoxToOriginal(b, mapping));
  return { iou: maxIou(boxes, gtBoxes), boxes };
}
