// Exact box geometry between an original image and the network input. Every transform of the pipeline (resize,
// crop, horizontal flip) is an axis-aligned affine map of continuous *edge* coordinates (pixel column x spans
// [x, x + 1)), so one map per axis, u' = a·u + b, describes a whole recipe:
//   resize W→W':  a = W'/W, b = 0        crop at left L:  a = 1, b = −L        flip in width W:  a = −1, b = W
// An inclusive box [x0, x1] spans edges [x0, x1 + 1]; it maps to edges [e0', e1'] (sorted, since a may be negative)
// and back to the inclusive box [e0', e1' − 1]. Inverting is exact: boxToOriginal(boxToInput(b, g), g) = b up to
// floating point, and for the usual integer scales and offsets bit for bit.
import type { Box } from './types.js';

/** Per-image map from original pixels to input pixels (see the header), plus both frame sizes. */
export interface Geometry {
  ax: number;
  bx: number;
  ay: number;
  by: number;
  /** Original size (after EXIF orientation). */
  srcWidth: number;
  srcHeight: number;
  /** Input size (what the network sees). */
  width: number;
  height: number;
  /** Whether the map mirrors the image (ax < 0). */
  flipped: boolean;
}

export function identityGeometry(width: number, height: number): Geometry {
  return { ax: 1, bx: 0, ay: 1, by: 0, srcWidth: width, srcHeight: height, width, height, flipped: false };
}

/** Composes: first `g`, then scaling/offsetting the current frame (new = a·old + b) into a frame of size w×h. */
export function composeGeometry(g: Geometry, ax: number, bx: number, ay: number, by: number, width: number, height: number): Geometry {
  return { ...g, ax: g.ax * ax, bx: g.bx * ax + bx, ay: g.ay * ay, by: g.by * ay + by, width, height, flipped: g.ax * ax < 0 };
}

function mapEdges(v0: number, v1: number, a: number, b: number): [number, number] {
  const e0 = a * v0 + b;
  const e1 = a * (v1 + 1) + b;
  return e0 <= e1 ? [e0, e1 - 1] : [e1, e0 - 1];
}

function unmapEdges(v0: number, v1: number, a: number, b: number): [number, number] {
  const e0 = (v0 - b) / a;
  const e1 = (v1 + 1 - b) / a;
  return e0 <= e1 ? [e0, e1 - 1] : [e1, e0 - 1];
}

/** An original-image box in input coordinates (not clipped; see clipBox). */
export function boxToInput(box: Box, g: Geometry): Box {
  const [x0, x1] = mapEdges(box[0], box[2], g.ax, g.bx);
  const [y0, y1] = mapEdges(box[1], box[3], g.ay, g.by);
  return [x0, y0, x1, y1];
}

/** An input-coordinate box (e.g. from a CAM at input size) in original-image coordinates. */
export function boxToOriginal(box: Box, g: Geometry): Box {
  const [x0, x1] = unmapEdges(box[0], box[2], g.ax, g.bx);
  const [y0, y1] = unmapEdges(box[1], box[3], g.ay, g.by);
  return [x0, y0, x1, y1];
}

/** A box clipped to a width×height frame, or undefined when nothing of it is inside. */
export function clipBox(box: Box, width: number, height: number): Box | undefined {
  const x0 = Math.max(0, box[0]), y0 = Math.max(0, box[1]);
  const x1 = Math.min(width - 1, box[2]), y1 = Math.min(height - 1, box[3]);
  return x1 - x0 + 1 > 0 && y1 - y0 + 1 > 0 && x1 >= 0 && y1 >= 0 && x0 <= width - 1 && y0 <= height - 1 ? [x0, y0, x1, y1] : undefined;
}

/** The part of the original image the input shows, as an inclusive box in original pixels. */
export function inputRegionInOriginal(g: Geometry): Box {
  return boxToOriginal([0, 0, g.width - 1, g.height - 1], g);
}

/** The whole pixels covering an inclusive (possibly fractional) box, clipped to a width×height image, as a crop
 *  [left, top, width, height]; at least 1×1. */
export function boxRegion(box: Box, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
  const x0 = clip(Math.floor(box[0]), width - 1);
  const y0 = clip(Math.floor(box[1]), height - 1);
  const x1 = clip(Math.ceil(box[2]), width - 1);
  const y1 = clip(Math.ceil(box[3]), height - 1);
  return { left: x0, top: y0, width: Math.max(x1, x0) - x0 + 1, height: Math.max(y1, y0) - y0 + 1 };
}

/** The smallest box holding all `boxes` (undefined for none). */
export function unionBox(boxes: readonly Box[]): Box | undefined {
  if (!boxes.length) return undefined;
  return boxes.reduce<Box>((u, b) => [Math.min(u[0], b[0]), Math.min(u[1], b[1]), Math.max(u[2], b[2]), Math.max(u[3], b[3])], [...boxes[0]] as Box);
}
