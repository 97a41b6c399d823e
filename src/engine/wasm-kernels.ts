// Training kernels for the wasm backend of @tensorflow/tfjs-backend-wasm 4.22.
//
// The stock wasm backend has no `Conv2DBackpropFilter` (so `model.fit` on a conv net throws "Kernel
// 'Conv2DBackpropFilter' not registered for backend 'wasm'"), and its `Conv2DBackpropInput` is a naive C loop about
// 11x slower than its XNNPACK `Conv2D`. Both gradients are rewritten here as a few calls of existing, fast wasm
// kernels (Conv2D, Transpose, PadV2, Slice, Reverse, Reshape), called directly through the kernel registry so that
// nothing is recorded on the gradient tape and every intermediate is freed before the kernel returns.
//
// Forward convolution (NHWC, dilation 1), with pt/pl the top/left padding and s the stride:
//   y[n, oh, ow, co] = Σ_{i, j, ci} x[n, oh·s + i − pt, ow·s + j − pl, ci] · w[i, j, ci, co]
// Filter gradient: dW[i, j, ci, co] = Σ_{n, oh, ow} x[n, oh·s + i − pt, ow·s + j − pl, ci] · dy[n, oh, ow, co].
//   Swapping the roles of batch and channels makes this one convolution: the "image" is x (padded/cropped to the
//   rows the forward pass read) transposed to [Ci, H', W', N], the "filter" is dy transposed to [OH, OW, N, Co],
//   applied with dilation s and no padding; the [Ci, fh, fw, Co] result transposed back is dW.
// Input gradient: dx is the full correlation of dy with the spatially flipped, in/out-transposed filter. For stride
//   1 that is one valid Conv2D of dy padded by (fh − 1 − pt) on top. For stride s > 1 the zero-dilated dy is never
//   built: each of the s×s output phases (rows ≡ rh, columns ≡ rw mod s) only meets the filter taps
//   i ≡ rh + pt (mod s), so each phase is one small stride-1 Conv2D with that sub-filter, and the phases are
//   interleaved with one Transpose.
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo, NamedAttrMap, NamedTensorInfoMap, KernelBackend } from '@tensorflow/tfjs';

const BACKEND = 'wasm';

type Backend = KernelBackend & {
  disposeData(dataId: object): boolean;
  makeOutput(shape: number[], dtype: 'float32', memoryOffset?: number, values?: Float32Array): TensorInfo;
};
type Shape4 = [number, number, number, number];

/** Runs other wasm kernels and frees every intermediate it made except the one kept as result. */
class KernelScope {
  private readonly made: TensorInfo[] = [];
  constructor(readonly backend: Backend) {}

  run(kernelName: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
    const kernel = tf.getKernel(kernelName, BACKEND);
    if (!kernel) throw new Error(`wasm training kernels: the wasm backend has no '${kernelName}' kernel`);
    const out = kernel.kernelFunc({ inputs, attrs, backend: this.backend });
    if (Array.isArray(out)) throw new Error(`wasm training kernels: '${kernelName}' returned several tensors`);
    this.made.push(out);
    return out;
  }

  /** Frees all intermediates; `keep` (one of them) survives and is returned. */
  finish(keep: TensorInfo): TensorInfo {
    for (const t of this.made) if (t !== keep) this.backend.disposeData(t.dataId);
    this.made.length = 0;
    return keep;
  }

  /** Frees everything (on error). */
  abandon(): void {
    for (const t of this.made) this.backend.disposeData(t.dataId);
    this.made.length = 0;
  }

  reshape(x: TensorInfo, shape: number[]): TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: TensorInfo, perm: number[]): TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** Stride-1 convolution (optionally dilated) with the wasm XNNPACK Conv2D of `x` padded by the given amounts on
   *  its two spatial axes (NHWC); positive amounts are zero padding done inside XNNPACK, negative ones crop first. */
  conv(x: TensorInfo, filter: TensorInfo, [top, bottom, left, right]: number[], dilations: [number, number] = [1, 1]): TensorInfo {
    const [n, h, w] = x.shape as Shape4;
    const [fh, fw, , co] = filter.shape as Shape4;
    const outH = h + top + bottom - (fh - 1) * dilations[0];
    const outW = w + left + right - (fw - 1) * dilations[1];
    const ct = Math.max(0, -top), cb = Math.max(0, -bottom), cl = Math.max(0, -left), cr = Math.max(0, -right);
    if (h - ct - cb <= 0 || w - cl - cr <= 0) {
      // Everything is cropped away: the convolution only sees padding.
      return this.zeros([n, Math.max(0, outH), Math.max(0, outW), co]);
    }
    let t = x;
    if (ct > 0 || cb > 0 || cl > 0 || cr > 0) {
      t = this.run('Slice', { x: t }, { begin: [0, ct, cl, 0], size: [n, h - ct - cb, w - cl - cr, x.shape[3]] });
    }
    const pad = [[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]];
    return this.run('Conv2D', { x: t, filter }, {
      strides: [1, 1], pad, dataFormat: 'NHWC', dilations, dimRoundingMode: undefined,
    } as unknown as NamedAttrMap);
  }

  /** The combined phase filter [kh, kw, Co, sh·sw·Ci] of the input gradient, computed in JavaScript from the
   *  [fh, fw, Ci, Co] filter (a few thousand numbers; the wasm Reverse/StridedSlice kernels cost more than the loop):
   *  C[th, tw, co, (rh·sw + rw)·Ci + ci] = w[i0h + sh·kh, i0w + sw·kw, ci, co] with kh = base_rh − lo_h − th
   *  (likewise for columns), zero where the phase has no such tap. */
  phaseFilter(filter: TensorInfo, rows: Phase[], cols: Phase[], wr: { lo: number; hi: number }, wc: { lo: number; hi: number }): TensorInfo {
    const [fh, fw, ci, co] = filter.shape as Shape4;
    void fh;
    const sh = rows.length, sw = cols.length;
    const kh = wr.hi - wr.lo + 1, kw = wc.hi - wc.lo + 1;
    const w = this.backend.readSync(filter.dataId) as Float32Array;
    const oc = sh * sw * ci;
    const out = new Float32Array(kh * kw * co * oc);
    for (const ph of rows) {
      for (let th = 0; th < kh; th++) {
        const k = ph.base - wr.lo - th;
        if (k < 0 || k >= ph.taps) continue;
        const i = ph.i0 + sh * k;
        for (const pw of cols) {
          for (let tw = 0; tw < kw; tw++) {
            const kk = pw.base - wc.lo - tw;
            if (kk < 0 || kk >= pw.taps) continue;
            const j = pw.i0 + sw * kk;
            const src = (i * fw + j) * ci * co;
            const dstBase = (th * kw + tw) * co * oc + (ph.r * sw + pw.r) * ci;
            for (let c = 0; c < ci; c++) {
              for (let o = 0; o < co; o++) out[dstBase + o * oc + c] = w[src + c * co + o];
            }
          }
        }
      }
    }
    const t = this.backend.makeOutput([kh, kw, co, oc], 'float32', undefined, out);
    this.made.push(t);
    return t;
  }

  zeros(shape: number[]): TensorInfo {
    return this.run('Fill', {}, { shape, value: 0, dtype: 'float32' });
  }
}

interface ConvGeometry {
  batch: number; inH: number; inW: number; inC: number;
  outH: number; outW: number; outC: number;
  fh: number; fw: number; sh: number; sw: number;
  padTop: number; padLeft: number;
}

function geometry(kernelName: string, xShape: Shape4, filterShape: Shape4, attrs: NamedAttrMap): ConvGeometry {
  const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
    strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const dilations = (attrs as { dilations?: number | [number, number] }).dilations ?? 1;
  const d = typeof dilations === 'number' ? [dilations, dilations] : dilations;
  if (d[0] !== 1 || d[1] !== 1) {
    throw new Error(`wasm ${kernelName}: dilation ${d.join('x')} is not supported (only dilation 1)`);
  }
  const format = tf.backend_util.convertConv2DDataFormat(dataFormat ?? 'NHWC');
  if (format !== 'channelsLast') {
    throw new Error(`wasm ${kernelName}: data format '${dataFormat}' is not supported (only NHWC)`);
  }
  const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, strides, 1, pad, dimRoundingMode, false, format);
  return {
    batch: info.batchSize, inH: info.inHeight, inW: info.inWidth, inC: info.inChannels,
    outH: info.outHeight, outW: info.outWidth, outC: info.outChannels,
    fh: info.filterHeight, fw: info.filterWidth, sh: info.strideHeight, sw: info.strideWidth,
    padTop: info.padInfo.top, padLeft: info.padInfo.left,
  };
}

/** dW = conv(x as [Ci, H', W', N], dy as [OH, OW, N, Co], dilation = stride), transposed back to [fh, fw, Ci, Co]. */
function conv2DBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs: NamedAttrMap }): TensorInfo {
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const filterShape = (args.attrs as { filterShape: Shape4 }).filterShape;
  const g = geometry('Conv2DBackpropFilter', x.shape as Shape4, filterShape, args.attrs);
  const s = new KernelScope(args.backend as Backend);
  try {
    if (g.outH === 0 || g.outW === 0 || g.batch === 0) return s.finish(s.zeros(filterShape));
    // The rows/columns of (padded) x the forward pass read: from −pt to −pt + (OH − 1)·s + fh − 1.
    const needH = (g.outH - 1) * g.sh + g.fh;
    const needW = (g.outW - 1) * g.sw + g.fw;
    const image = s.transpose(x, [3, 1, 2, 0]); // [Ci, H, W, N]
    const filter = s.transpose(dy, [1, 2, 0, 3]); // [OH, OW, N, Co]
    const pads = [g.padTop, needH - g.inH - g.padTop, g.padLeft, needW - g.inW - g.padLeft];
    const out = s.conv(image, filter, pads, [g.sh, g.sw]); // [Ci, fh, fw, Co]
    return s.finish(s.transpose(out, [1, 2, 0, 3]));
  } catch (err) {
    s.abandon();
    throw err;
  }
}

/** dx = full correlation of dy with the flipped filter; for strides > 1 all s×s phases in one Conv2D. */
function conv2DBackpropInput(args: { inputs: NamedTensorInfoMap; backend: KernelBackend; attrs: NamedAttrMap }): TensorInfo {
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = (args.attrs as { inputShape: Shape4 }).inputShape;
  const g = geometry('Conv2DBackpropInput', inputShape, filter.shape as Shape4, args.attrs);
  const s = new KernelScope(args.backend as Backend);
  try {
    if (g.outH === 0 || g.outW === 0 || g.outC === 0) return s.finish(s.zeros(inputShape));
    const qh = Math.ceil(g.inH / g.sh);
    const qw = Math.ceil(g.inW / g.sw);
    const rows = phases(g.sh, g.fh, g.padTop);
    const cols = phases(g.sw, g.fw, g.padLeft);
    const wr = phaseWindow(rows);
    const wc = phaseWindow(cols);
    const combined = s.phaseFilter(filter, rows, cols, wr, wc); // [kh, kw, Co, sh·sw·Ci]
    // Valid correlation: output q reads dy rows q + lo … q + hi.
    const pads = [-wr.lo, qh - 1 + wr.hi - (g.outH - 1), -wc.lo, qw - 1 + wc.hi - (g.outW - 1)];
    let full = s.conv(dy, combined, pads); // [N, qh, qw, sh·sw·Ci]: channel (rh·sw + rw)·Ci + ci holds dx[s·q + rh, s·p + rw, ci]
    if (g.sh > 1 || g.sw > 1) {
      // Interleave the phases with one rank-4 transpose: [N·qh, qw, sh, sw·Ci] → [N·qh, sh, qw, sw·Ci].
      const grouped = s.reshape(full, [g.batch * qh, qw, g.sh, g.sw * g.inC]);
      const inter = s.transpose(grouped, [0, 2, 1, 3]);
      full = s.reshape(inter, [g.batch, qh * g.sh, qw * g.sw, g.inC]);
    }
    if (qh * g.sh !== g.inH || qw * g.sw !== g.inW) {
      full = s.run('Slice', { x: full }, { begin: [0, 0, 0, 0], size: inputShape });
    }
    return s.finish(full);
  } catch (err) {
    s.abandon();
    throw err;
  }
}

/** One phase of one axis: output positions h = s·q + r (q = 0..Q−1) meet only the filter taps i ≡ r + pt (mod s),
 *  i = i0 + s·k (k = 0..K−1), through dy[q + base − k]. With stride 1 there is one phase holding every tap. */
interface Phase { r: number; i0: number; taps: number; base: number }

function phases(stride: number, filterSize: number, pad: number): Phase[] {
  const result: Phase[] = [];
  for (let r = 0; r < stride; r++) {
    const i0 = (((r + pad) % stride) + stride) % stride;
    const taps = i0 < filterSize ? Math.ceil((filterSize - i0) / stride) : 0;
    // dx[s·q + r] = Σ_k dy[oh] · w[i0 + s·k] with oh = (s·q + r + pad − i0)/s − k.
    result.push({ r, i0, taps, base: (r + pad - i0) / stride });
  }
  return result;
}

/** The window of dy offsets (relative to q) that the phases of one axis read: [lo, hi]. */
function phaseWindow(ps: Phase[]): { lo: number; hi: number } {
  let lo = Infinity, hi = -Infinity;
  for (const p of ps) {
    if (p.taps === 0) continue;
    lo = Math.min(lo, p.base - (p.taps - 1));
    hi = Math.max(hi, p.base);
  }
  return { lo, hi };
}

const KERNELS = [
  ['Conv2DBackpropFilter', conv2DBackpropFilter],
  ['Conv2DBackpropInput', conv2DBackpropInput],
] as const;

/** Registers the two gradient kernels for the `wasm` backend (replacing the stock Conv2DBackpropInput). Call after
 *  `@tensorflow/tfjs-backend-wasm` has been imported (importing it registers its own kernels, which would otherwise
 *  override these); calling again does nothing. */
export function registerWasmTrainingKernels(): void {
  if (!tf.findBackendFactory(BACKEND)) {
    throw new Error('registerWasmTrainingKernels: import @tensorflow/tfjs-backend-wasm first');
  }
  for (const [kernelName, kernelFunc] of KERNELS) {
    const existing = tf.getKernel(kernelName, BACKEND);
    if (existing?.kernelFunc === (kernelFunc as unknown)) continue;
    if (existing) tf.unregisterKernel(kernelName, BACKEND);
    tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
}

/** True when the wasm backend runs these training kernels. */
export function wasmTrainingKernelsRegistered(): boolean {
  return KERNELS.every(([kernelName, kernelFunc]) => tf.getKernel(kernelName, BACKEND)?.kernelFunc === (kernelFunc as unknown));
}
