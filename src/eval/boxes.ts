// Boxes, IoU, score maps and connected components: the pure-TypeScript geometry under localization evaluation.
//
// BOX CONVENTION (one for all of gapcam, see src/data/types.ts): a box is [x0, y0, x1, y1] in pixels with INCLUSIVE
// corners, the Pascal VOC and wsolevaluation ('x0y0x1y1') convention. A box covering exactly pixel column 5 has
// x0 = x1 = 5; its width is x1 - x0 + 1. Areas and intersections therefore use "+ 1":
//   area(b)  = (x1 - x0 + 1) · (y1 - y0 + 1)
//   inter    = max(0, min(ax1, bx1) - max(ax0, bx0) + 1) · max(0, min(ay1, by1) - max(ay0, by0) + 1)
//   IoU      = inter / (area(a) + area(b) - inter)       (0 when that denominator is ≤ 0, as wsolevaluation does)
// This is exactly wsolevaluation's `calculate_multiple_iou`. Boxes derived from a score map cover whole pixels, so
// their corners are integers; ground-truth boxes may carry fractional corners (CUB stores floats) and the same
// formula applies to them unchanged.
import type { Box } from '../data/types.js';
import { UserError } from '../errors.js';

export type { Box };

/** A single-channel score map, row-major: value of pixel (x, y) is data[y * width + x]. */
export interface ScoreMap {
  data: Float32Array;
  width: number;
  height: number;
}

export type BoxConvention = 'x0y0x1y1' | 'xywh';

/** Named invariant check (wsolevaluation's `check_box_convention`): every box has 4 finite, non-negative numbers and,
 *  for 'x0y0x1y1', x1 ≥ x0 and y1 ≥ y0 (for 'xywh', w ≥ 0 and h ≥ 0). Throws a one-line UserError naming `where`. */
export function checkBoxConvention(boxes: readonly Box[] | Box, convention: BoxConvention = 'x0y0x1y1', where = 'box'): void {
  const list: readonly (readonly number[])[] = isSingleBox(boxes) ? [boxes] : boxes;
  for (const b of list) {
    if (!Array.isArray(b) || b.length !== 4 || !b.every((v) => Number.isFinite(v))) {
      throw new UserError(`${where}: expected 4 finite numbers [${convention}], found [${String(b)}]`);
    }
    if (b.some((v) => v < 0)) throw new UserError(`${where}: box coordinates must be non-negative, found [${b.join(', ')}]`);
    const [, , c, d] = b;
    const w = convention === 'x0y0x1y1' ? c - b[0] : c;
    const h = convention === 'x0y0x1y1' ? d - b[1] : d;
    if (w < 0 || h < 0) throw new UserError(`${where}: box [${b.join(', ')}] does not follow the ${convention} convention (negative width or height)`);
  }
}

function isSingleBox(b: readonly Box[] | Box): b is Box {
  return b.length === 4 && typeof b[0] === 'number';
}

/** Area of an inclusive-corner box: (x1 - x0 + 1)(y1 - y0 + 1). */
export function boxArea(b: Box): number {
  return (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
}

/** Intersection over union of two inclusive-corner boxes (see the header); 0 for a degenerate union. */
export function iou(a: Box, b: Box): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]) + 1;
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]) + 1;
  const inter = iw > 0 && ih > 0 ? iw * ih : 0;
  const union = boxArea(a) + boxArea(b) - inter;
  return union > 0 ? inter / union : 0;
}

/** The best IoU between any predicted box and any ground-truth box (0 when either list is empty). An image with
 *  several ground-truth boxes is a hit at IoU δ when this reaches δ. */
export function maxIou(predicted: readonly Box[], groundTruth: readonly Box[]): number {
  let best = 0;
  for (const p of predicted) for (const g of groundTruth) best = Math.max(best, iou(p, g));
  return best;
}

/** Converts a [x, y, w, h] box (w, h counted in pixels) to inclusive corners [x, y, x + w - 1, y + h - 1]. */
export function xywhToBox([x, y, w, h]: [number, number, number, number]): Box {
  return [x, y, x + w - 1, y + h - 1];
}

// ---------------------------------------------------------------------------------------------------------------
// Score maps

/** wsolevaluation's `normalize_scoremap`: (v - min) / (max - min) into a new map; a constant map or one containing
 *  NaN becomes all zeros. Works for any sign (a map whose maximum is negative normalises like any other). */
export function normalizeScoremap(map: ScoreMap): ScoreMap {
  const { data } = map;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v !== v) return { data: new Float32Array(data.length), width: map.width, height: map.height }; // NaN
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const out = new Float32Array(data.length);
  if (!(max > min)) return { data: out, width: map.width, height: map.height };
  const range = max - min;
  for (let i = 0; i < data.length; i++) out[i] = (data[i] - min) / range;
  return { data: out, width: map.width, height: map.height };
}

export function checkScoreMap(map: ScoreMap, where = 'score map'): void {
  if (!Number.isInteger(map.width) || !Number.isInteger(map.height) || map.width < 1 || map.height < 1) {
    throw new UserError(`${where}: expected a positive integer size, found ${map.width}×${map.height}`);
  }
  if (map.data.length !== map.width * map.height) {
    throw new UserError(`${where}: expected ${map.width}×${map.height} = ${map.width * map.height} values, found ${map.data.length}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Connected components (8-connectivity, the connectivity of OpenCV's findContours for foreground pixels)

/** One 8-connected component of a binary mask: its pixel count, tight inclusive box and the raster index of its first
 *  pixel (used to break ties between equal areas: the component met first in raster order wins). */
export interface Component {
  area: number;
  box: Box;
  firstIndex: number;
}

/** Union-find root of `i` with path compression (`parent[r] === r` at a root); shared by the component labelling
 *  here and the threshold sweep in localization.ts. */
export function findRoot(parent: Int32Array, i: number): number {
  let r = i;
  while (parent[r] !== r) r = parent[r];
  while (parent[i] !== r) {
    const next = parent[i];
    parent[i] = r;
    i = next;
  }
  return r;
}

/** Labels the 8-connected components of `mask` (non-zero = foreground) with a two-pass union-find over a typed array.
 *  Components are returned in raster order of their first pixel. */
export function connectedComponents(mask: Uint8Array, width: number, height: number): Component[] {
  const n = width * height;
  if (mask.length !== n) throw new Error(`connectedComponents: mask has ${mask.length} values, expected ${n}`);
  const parent = new Int32Array(n).fill(-1);
  const find = (i: number): number => findRoot(parent, i);
  const union = (a: number, b: number): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return;
    // keep the smaller index as root: roots are then the first pixel in raster order
    if (ra < rb) parent[rb] = ra;
    else parent[ra] = rb;
  };
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const i = row + x;
      if (!mask[i]) continue;
      parent[i] = i;
      if (x > 0 && mask[i - 1]) union(i, i - 1);
      if (y > 0) {
        const up = i - width;
        if (x > 0 && mask[up - 1]) union(i, up - 1);
        if (mask[up]) union(i, up);
        if (x + 1 < width && mask[up + 1]) union(i, up + 1);
      }
    }
  }
  // second pass: per-root statistics in typed arrays (roots are met in raster order of their first pixel)
  const slot = new Int32Array(n).fill(-1);
  const area: number[] = [];
  const bx0: number[] = [];
  const by0: number[] = [];
  const bx1: number[] = [];
  const by1: number[] = [];
  const first: number[] = [];
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const i = row + x;
      if (parent[i] < 0) continue;
      const r = parent[i] === i ? i : find(i);
      let k = slot[r];
      if (k < 0) {
        k = slot[r] = area.length;
        area.push(0);
        bx0.push(x);
        by0.push(y);
        bx1.push(x);
        by1.push(y);
        first.push(r);
      }
      area[k]++;
      if (x < bx0[k]) bx0[k] = x;
      if (x > bx1[k]) bx1[k] = x;
      by1[k] = y;
    }
  }
  return area.map((a, k) => ({ area: a, box: [bx0[k], by0[k], bx1[k], by1[k]] as Box, firstIndex: first[k] }));
}

/** Which components become boxes: every one (wsolevaluation's multi-contour evaluation) or only the largest. */
export type BoxSelection = 'all' | 'largest';

/** Is component `a` larger than `b`: more pixels, ties broken by the earlier first pixel in raster order. */
export function largerComponent(a: { area: number; firstIndex: number }, b: { area: number; firstIndex: number }): boolean {
  return a.area > b.area || (a.area === b.area && a.firstIndex < b.firstIndex);
}

/** Boxes of the components of a mask: all of them, or the largest one (by pixel count; ties → first in raster
 *  order). An empty mask gives no box. */
export function maskBoxes(mask: Uint8Array, width: number, height: number, selection: BoxSelection): Box[] {
  const comps = connectedComponents(mask, width, height);
  if (comps.length === 0) return [];
  if (selection === 'all') return comps.map((c) => c.box);
  let best = comps[0];
  for (const c of comps) if (largerComponent(c, best)) best = c;
  return [best.box];
}

// ---------------------------------------------------------------------------------------------------------------
// From the map's pixel grid to the original image

/**
 * How a map's pixel grid sits on the original image: map pixel column i covers original columns
 * [offsetX + i·scaleX, offsetX + (i + 1)·scaleX), likewise for rows. A plain resize of a W×H image to a w×h input is
 * { scaleX: W / w, scaleY: H / h, offsetX: 0, offsetY: 0 }; a centre crop adds the crop's offset.
 */
export interface GridMapping {
  scaleX: number;
  scaleY: number;
  offsetX: number;
  offsetY: number;
  /** Original image size, to clip to. */
  width: number;
  height: number;
}

/** The mapping of a plain (stretching) resize from `original` to a `mapWidth`×`mapHeight` grid. */
export function resizeMapping(original: { width: number; height: number }, mapWidth: number, mapHeight: number): GridMapping {
  return {
    scaleX: original.width / mapWidth,
    scaleY: original.height / mapHeight,
    offsetX: 0,
    offsetY: 0,
    width: original.width,
    height: original.height,
  };
}

/**
 * Maps an inclusive box on the map's grid to the original image, exactly (no rounding, no resampling): the box spans
 * the continuous edges [x0, x1 + 1) on the grid, i.e. [offsetX + x0·sx, offsetX + (x1 + 1)·sx) on the image, which is
 * the inclusive box [offsetX + x0·sx, offsetX + (x1 + 1)·sx − 1] (fractional corners when the scale is not an
 * integer; the "+ 1" IoU formula then measures the exact continuous areas). The same convention as
 * src/data/geometry.ts `boxToOriginal`. Clipped to the image [0, width − 1] × [0, height − 1].
 */
export function mapBoxToOriginal(box: Box, m: GridMapping): Box {
  const x0 = m.offsetX + box[0] * m.scaleX;
  const y0 = m.offsetY + box[1] * m.scaleY;
  const x1 = m.offsetX + (box[2] + 1) * m.scaleX - 1;
  const y1 = m.offsetY + (box[3] + 1) * m.scaleY - 1;
  return [Math.max(0, x0), Math.max(0, y0), Math.min(m.width - 1, x1), Math.min(m.height - 1, y1)];
}
