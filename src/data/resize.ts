// Resizing 8-bit RGB pixels to a model's input size in plain JavaScript, so that `gapcam cam` (Node) and the page
// `gapcam model export --web` writes (a browser) feed the model the very same bytes: sharp (libvips) is native and
// browsers only offer canvas scaling, whose filter is unspecified. No npm package does an antialiased resize on raw
// RGB buffers without a canvas or native code in both places, hence this file (browser-safe: no Node imports).
//
// The filter is Lanczos-3, antialiased like Pillow's `Image.resize(..., LANCZOS)` and libvips' lanczos3 (the kernel
// is stretched by the scale factor when shrinking), separable: horizontal pass, rounded to 8 bits, then vertical
// pass, rounded to 8 bits. Output pixel centres sit at (i + 0.5)·scale in input coordinates (half-pixel centres),
// shrinking and enlarging alike. Shrinking matches sharp's lanczos3 within half a level on average
// (test/data/resize.test.ts); when enlarging, libvips places its samples differently.

const SUPPORT = 3;

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

function lanczos3(x: number): number {
  return x > -SUPPORT && x < SUPPORT ? sinc(x) * sinc(x / SUPPORT) : 0;
}

interface Taps {
  /** First input index feeding each output index. */
  start: Int32Array;
  /** Number of taps per output index. */
  count: Int32Array;
  /** Normalised weights, `stride` slots per output index. */
  weights: Float64Array;
  stride: number;
}

/** Filter taps for resampling `inSize` samples to `outSize` (Pillow's precompute_coeffs, in floating point). */
function taps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * stride);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let sum = 0;
    const n = hi - lo;
    for (let k = 0; k < n; k++) {
      const w = lanczos3((k + lo - center + 0.5) / filterScale);
      weights[i * stride + k] = w;
      sum += w;
    }
    if (sum !== 0) for (let k = 0; k < n; k++) weights[i * stride + k] /= sum;
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, stride };
}

function toByte(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}

/** Resizes RGB pixels (row-major HWC, 3 channels, 0..255) from width × height to outWidth × outHeight (a plain
 *  stretch, no aspect ratio kept) with antialiased Lanczos-3. Returns `data` itself when the size is unchanged. */
export function resizeRgbLanczos3(data: Uint8Array | Uint8ClampedArray, width: number, height: number, outWidth: number, outHeight: number): Uint8Array {
  if (data.length !== width * height * 3) throw new Error(`resizeRgbLanczos3: ${data.length} bytes for a ${width}×${height} RGB image`);
  if (!(outWidth >= 1 && outHeight >= 1)) throw new Error(`resizeRgbLanczos3: output size ${outWidth}×${outHeight}`);
  if (width === outWidth && height === outHeight) return data instanceof Uint8Array ? data : new Uint8Array(data);
  // horizontal pass: height rows of outWidth pixels
  const h = taps(width, outWidth);
  const mid = new Uint8Array(height * outWidth * 3);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < outWidth; x++) {
      let r = 0, g = 0, b = 0;
      const base = x * h.stride;
      for (let k = 0; k < h.count[x]; k++) {
        const w = h.weights[base + k];
        const p = row + (h.start[x] + k) * 3;
        r += data[p] * w;
        g += data[p + 1] * w;
        b += data[p + 2] * w;
      }
      const o = (y * outWidth + x) * 3;
      mid[o] = toByte(r);
      mid[o + 1] = toByte(g);
      mid[o + 2] = toByte(b);
    }
  }
  // vertical pass
  const v = taps(height, outHeight);
  const out = new Uint8Array(outHeight * outWidth * 3);
  const rowBytes = outWidth * 3;
  for (let y = 0; y < outHeight; y++) {
    const base = y * v.stride;
    const o = y * rowBytes;
    for (let i = 0; i < rowBytes; i++) {
      let s = 0;
      for (let k = 0; k < v.count[y]; k++) s += mid[(v.start[y] + k) * rowBytes + i] * v.weights[base + k];
      out[o + i] = toByte(s);
    }
  }
  return out;
}
