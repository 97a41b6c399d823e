// Weight quantisation in the tfjs converter's format, so that `tf.loadLayersModel` de-quantises while loading (the
// converter that normally writes it, tensorflowjs_converter --quantize_uint8 / --quantize_float16, is Python).
// A quantised weight keeps its `dtype: 'float32'` in the manifest and gains
//   uint8:   quantization: { dtype: 'uint8', min, scale }   stored q = round((clip(v) − min) / scale), one byte each;
//            the loader computes v = q·scale + min. As in the converter, the range is "nudged" (TF-Lite style) so that
//            0 is exactly representable when it lies inside [min, max]: padding and ReLU zeros stay exact.
//   float16: quantization: { dtype: 'float16' }             stored as IEEE half floats, round to nearest even.
// Only float32 weights are quantised; int32 weights are copied as they are.
import type * as tf from '@tensorflow/tfjs';

export const WEIGHT_QUANTIZATIONS = ['float16', 'uint8'] as const;
export type WeightQuantization = (typeof WEIGHT_QUANTIZATIONS)[number];

/** numpy's np.round: halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The IEEE 754 half-precision bits of a float32 value, rounded to nearest even (numpy's astype(np.float16)). */
export function float16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf, NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // too large: Inf
  if (e <= 0) {
    // a half subnormal (or zero): m · 2^-24
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (m & 1))) m++;
    return sign | m;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // a carry may roll into the exponent (up to Inf): correct
  return half;
}

export interface Uint8Quantized {
  values: Uint8Array;
  min: number;
  scale: number;
}

/** The converter's affine uint8 quantisation of one weight (see the header). */
export function quantizeUint8(data: Float32Array): Uint8Quantized {
  const values = new Uint8Array(data.length);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    if (data[i] < lo) lo = data[i];
    if (data[i] > hi) hi = data[i];
  }
  if (data.length === 0) return { values, min: 0, scale: 1 };
  if (lo === hi) return { values, min: lo, scale: 1 };
  const scale = (hi - lo) / 255;
  let min = lo;
  let max = hi;
  if (lo <= 0 && 0 <= hi) {
    min = -roundHalfEven(-lo / scale) * scale;
    max = 255 * scale + min;
  }
  for (let i = 0; i < data.length; i++) {
    const v = Math.min(max, Math.max(min, data[i]));
    values[i] = Math.min(255, Math.max(0, roundHalfEven((v - min) / scale)));
  }
  return { values, min, scale };
}

/** Half floats of a float32 array. */
export function quantizeFloat16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = float16Bits(data[i]);
  return out;
}

const BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, float16: 2, uint16: 2 };

/** Re-encodes a weight manifest and its concatenated data with quantised float32 weights. */
export function quantizeWeights(specs: readonly tf.io.WeightsManifestEntry[], data: Uint8Array, quantization: WeightQuantization): { specs: tf.io.WeightsManifestEntry[]; data: Uint8Array } {
  const parts: Uint8Array[] = [];
  const out: tf.io.WeightsManifestEntry[] = [];
  let offset = 0;
  for (const spec of specs) {
    if (spec.quantization) throw new Error(`quantizeWeights: weight ${spec.name} is already quantised`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    const bytes = count * (BYTES[spec.dtype] ?? 4);
    const raw = data.slice(offset, offset + bytes);
    offset += bytes;
    if (spec.dtype !== 'float32') {
      parts.push(raw);
      out.push({ ...spec });
      continue;
    }
    const values = new Float32Array(raw.buffer, raw.byteOffset, count);
    if (quantization === 'float16') {
      parts.push(new Uint8Array(quantizeFloat16(values).buffer));
      out.push({ ...spec, quantization: { dtype: 'float16' } });
    } else {
      const q = quantizeUint8(values);
      parts.push(q.values);
      out.push({ ...spec, quantization: { dtype: 'uint8', min: q.min, scale: q.scale } });
    }
  }
  if (offset !== data.byteLength) throw new Error(`quantizeWeights: the manifest describes ${offset} bytes, the data has ${data.byteLength}`);
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const joined = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.byteLength;
  }
  return { specs: out, data: joined };
}
