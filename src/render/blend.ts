// The pixel arithmetic of CAM pictures in plain JavaScript: a map resized to the photo and normalised, blended over
// the photo through a colormap, boxes drawn into the pixels. Browser-safe (no Node imports): `gapcam cam` (through
// overlay.ts, which encodes the result with sharp) and the page of `gapcam model export --web` (which paints it on
// a canvas) share it, so both draw the same overlay.
import type { DecodedImage } from '../data/image.js';
import type { Box } from '../data/types.js';
import { applyColormap, type ColormapName } from './colormap.js';
import { normalizeArray, resizeBilinearArray } from '../cam/map-arrays.js';

export type Rgb = [number, number, number];

export interface DrawnBox {
  box: Box;
  color: Rgb;
}

export const CAM_BOX_COLOR: Rgb = [0, 255, 0];
export const GT_BOX_COLOR: Rgb = [255, 0, 0];

/** A [h, w] map (row-major) resized bilinearly (half-pixel centres, as upsampleMaps) to width × height and min-max
 *  normalised to [0, 1] (plain JS: photos come in many sizes). */
export function mapToSize(map: Float32Array, h: number, w: number, width: number, height: number): Float32Array {
  return normalizeArray(h === height && w === width ? map : resizeBilinearArray(map, h, w, height, width));
}

/** Blends `map` (values in [0, 1], one per pixel of `image`) over the image: out = (1 − α)·image + α·colour(map). */
export function blend(image: DecodedImage, map: Float32Array, colormap: ColormapName = 'jet', opacity = 0.5): Uint8Array {
  if (map.length !== image.width * image.height) {
    throw new Error(`overlay: map has ${map.length} values, image has ${image.width}×${image.height} pixels`);
  }
  const a = Math.min(1, Math.max(0, opacity));
  const heat = applyColormap(map, colormap);
  const out = new Uint8Array(image.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - a) * image.data[i] + a * heat[i]);
  return out;
}

/** Line width for boxes on an image of this size. */
export function boxThickness(width: number, height: number): number {
  return Math.max(2, Math.round(Math.min(width, height) / 160));
}

/** Draws inclusive boxes (x0 y0 x1 y1, original pixels) into RGB HWC pixels, in place, lines growing inwards. */
export function drawBoxes(pixels: Uint8Array, width: number, height: number, boxes: DrawnBox[], thickness = boxThickness(width, height)): void {
  const put = (x: number, y: number, c: Rgb) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const i = (y * width + x) * 3;
    pixels[i] = c[0];
    pixels[i + 1] = c[1];
    pixels[i + 2] = c[2];
  };
  for (const { box, color } of boxes) {
    const [x0, y0, x1, y1] = box.map(Math.round);
    for (let t = 0; t < thickness; t++) {
      for (let x = x0; x <= x1; x++) {
        put(x, y0 + t, color);
        put(x, y1 - t, color);
      }
      for (let y = y0; y <= y1; y++) {
        put(x0 + t, y, color);
        put(x1 - t, y, color);
      }
    }
  }
}
