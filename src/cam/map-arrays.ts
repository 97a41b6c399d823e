// One CAM map as a plain row-major Float32Array: the half-pixel bilinear resize and the min-max normalisation, in
// plain JavaScript. Browser-safe (no Node imports, no TensorFlow.js): shared by `gapcam cam`'s overlays and the page
// of `gapcam model export --web`.

/** Bilinear resize of one [h, w] map (row-major) to [height, width] in plain JS, with the same convention as
 *  upsampleMaps' default (half-pixel centres, edges clamped). Used for per-image sizes: on the native engine every
 *  new tensor shape costs a fresh kernel set-up (hundreds of ms), which plain JS avoids. */
export function resizeBilinearArray(map: Float32Array, h: number, w: number, height: number, width: number): Float32Array {
  if (map.length !== h * w) throw new Error(`resizeBilinearArray: ${map.length} values for a ${w}×${h} map`);
  const out = new Float32Array(height * width);
  const sy = h / height;
  const sx = w / width;
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
    x0s[x] = Math.floor(fx);
    x1s[x] = Math.min(x0s[x] + 1, w - 1);
    fxs[x] = fx - x0s[x];
  }
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const ty = fy - y0;
    const r0 = y0 * w;
    const r1 = y1 * w;
    for (let x = 0; x < width; x++) {
      const a = map[r0 + x0s[x]] + (map[r0 + x1s[x]] - map[r0 + x0s[x]]) * fxs[x];
      const b = map[r1 + x0s[x]] + (map[r1 + x1s[x]] - map[r1 + x0s[x]]) * fxs[x];
      out[y * width + x] = a + (b - a) * ty;
    }
  }
  return out;
}

/** Min-max normalises one map stored row-major in a Float32Array into a new array; a constant map becomes zeros. */
export function normalizeArray(values: Float32Array, options: { relu?: boolean } = {}): Float32Array {
  const out = new Float32Array(values.length);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = options.relu && values[i] < 0 ? 0 : values[i];
    out[i] = v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo;
  if (!(range > 0)) return out.fill(0);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] - lo) / range;
  return out;
}
