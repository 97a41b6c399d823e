// Colormaps for CAM pictures: 256-entry RGB lookup tables, one registry line per map.
//   jet:     matplotlib's `jet` (its _jet_data segment table, linear between the breakpoints) — the CAM paper's look.
//   viridis: matplotlib's `viridis`, the exact 256 colours, from the scale-color-perceptual package.
// Browser-safe (no Node imports): the page of `gapcam model export --web` bundles this file.
import viridisHex from 'scale-color-perceptual/hex/viridis.json' with { type: 'json' };
import { UserError } from '../errors.js';

export const COLORMAP_NAMES = ['jet', 'viridis'] as const;
export type ColormapName = (typeof COLORMAP_NAMES)[number];

type Segments = [number, number][]; // (x, value) breakpoints, linear in between

function fromSegments(r: Segments, g: Segments, b: Segments): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  const at = (seg: Segments, x: number): number => {
    for (let i = 1; i < seg.length; i++) {
      if (x <= seg[i][0]) {
        const [x0, y0] = seg[i - 1];
        const [x1, y1] = seg[i];
        return y0 + ((x - x0) / (x1 - x0)) * (y1 - y0);
      }
    }
    return seg[seg.length - 1][1];
  };
  for (let i = 0; i < 256; i++) {
    const x = i / 255;
    lut[i * 3] = Math.round(255 * at(r, x));
    lut[i * 3 + 1] = Math.round(255 * at(g, x));
    lut[i * 3 + 2] = Math.round(255 * at(b, x));
  }
  return lut;
}

function fromHex(colors: string[]): Uint8Array {
  if (colors.length !== 256) throw new Error(`colormap table: expected 256 colours, found ${colors.length}`);
  const lut = new Uint8Array(256 * 3);
  colors.forEach((hex, i) => {
    const v = parseInt(hex.replace('#', ''), 16);
    lut[i * 3] = (v >> 16) & 255;
    lut[i * 3 + 1] = (v >> 8) & 255;
    lut[i * 3 + 2] = v & 255;
  });
  return lut;
}

const builders: Record<ColormapName, () => Uint8Array> = {
  jet: () => fromSegments(
    [[0, 0], [0.35, 0], [0.66, 1], [0.89, 1], [1, 0.5]],
    [[0, 0], [0.125, 0], [0.375, 1], [0.64, 1], [0.91, 0], [1, 0]],
    [[0, 0.5], [0.11, 1], [0.34, 1], [0.65, 0], [1, 0]],
  ),
  viridis: () => fromHex(viridisHex as string[]),
};

const cache = new Map<ColormapName, Uint8Array>();

export function parseColormap(name: string): ColormapName {
  if ((COLORMAP_NAMES as readonly string[]).includes(name)) return name as ColormapName;
  throw new UserError(`--colormap: expected one of ${COLORMAP_NAMES.join(', ')}; got '${name}'`);
}

/** The 256 × RGB lookup table of a colormap. */
export function colormapLut(name: ColormapName): Uint8Array {
  let lut = cache.get(name);
  if (!lut) cache.set(name, (lut = builders[name]()));
  return lut;
}

/** Maps values in [0, 1] (clamped; NaN → 0) to RGB bytes, HWC. */
export function applyColormap(values: Float32Array, name: ColormapName): Uint8Array {
  const lut = colormapLut(name);
  const out = new Uint8Array(values.length * 3);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const idx = v > 0 ? (v < 1 ? Math.round(v * 255) : 255) : 0;
    out[i * 3] = lut[idx * 3];
    out[i * 3 + 1] = lut[idx * 3 + 1];
    out[i * 3 + 2] = lut[idx * 3 + 2];
  }
  return out;
}
