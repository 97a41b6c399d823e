// The preprocessing modes as data: presets, explicit mean/std, parsing and checking (no tensor code here, so recipes
// and flags are checked without loading TensorFlow). The arithmetic lives in preprocess.ts.
import type { CustomPreprocessing, PreprocessMode, PreprocessPreset } from './types.js';
import { UserError } from '../errors.js';

export const PREPROCESS_MODES: readonly PreprocessPreset[] = ['caffe', 'torch', 'tf', 'unit'];

/** Per-mode constants: output channel c = ((input channel order[c]) / divisor - mean[c]) / std[c]. */
export interface PreprocessSpec {
  /** Which RGB input channel feeds each output channel. */
  order: [number, number, number];
  /** What 0..255 values are divided by first (1: left as they are). */
  divisor: number;
  mean: [number, number, number];
  std: [number, number, number];
  describe: string;
}

export const PREPROCESS_SPECS: Record<PreprocessPreset, PreprocessSpec> = {
  caffe: {
    order: [2, 1, 0],
    divisor: 1,
    mean: [103.939, 116.779, 123.68],
    std: [1, 1, 1],
    describe: 'BGR, 0..255 minus the ImageNet mean [103.939, 116.779, 123.68] (Keras VGG16, ResNet50)',
  },
  torch: {
    order: [0, 1, 2],
    divisor: 255,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    describe: 'RGB, x/255 normalised by ImageNet mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225] (Keras DenseNet)',
  },
  tf: {
    order: [0, 1, 2],
    divisor: 127.5,
    mean: [1, 1, 1],
    std: [1, 1, 1],
    describe: 'RGB, x/127.5 - 1 in [-1, 1] (Keras MobileNet, MobileNetV2, Inception, Xception, ResNetV2)',
  },
  unit: { order: [0, 1, 2], divisor: 255, mean: [0, 0, 0], std: [1, 1, 1], describe: 'RGB scaled to [0, 1]' },
};

function isTriple(v: unknown): v is [number, number, number] {
  return Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x));
}

/** Why `v` is not a valid preprocessing (a preset name or {mean, std, channelOrder, range}); undefined when it is. */
export function preprocessingProblem(v: unknown): string | undefined {
  if (typeof v === 'string') return (PREPROCESS_MODES as readonly string[]).includes(v) ? undefined : `unknown mode '${v}'`;
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a mode name or a {mean, std, channelOrder, range} object';
  const o = v as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => !['mean', 'std', 'channelOrder', 'range'].includes(k));
  if (extra) return `unknown key '${extra}'`;
  if (!isTriple(o.mean)) return 'mean should be 3 numbers';
  if (!isTriple(o.std) || o.std.some((s) => s <= 0)) return 'std should be 3 positive numbers';
  if (o.channelOrder !== 'rgb' && o.channelOrder !== 'bgr') return "channelOrder should be 'rgb' or 'bgr'";
  if (o.range !== 1 && o.range !== 255) return 'range should be 1 or 255';
  return undefined;
}

/** The constants of a preset or an explicit normalisation. */
export function preprocessSpec(p: PreprocessMode): PreprocessSpec {
  if (typeof p === 'string') {
    const spec = PREPROCESS_SPECS[p];
    if (!spec) throw new UserError(`unknown preprocessing mode '${p}': expected one of ${PREPROCESS_MODES.join(', ')}`);
    return spec;
  }
  return {
    order: p.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2],
    divisor: p.range === 1 ? 255 : 1,
    mean: p.mean,
    std: p.std,
    describe: describePreprocessing(p),
  };
}

/** A short name for logs and tables: the preset, or `mean=…, std=…, bgr, 0..1`. */
export function describePreprocessing(p: PreprocessMode): string {
  if (typeof p === 'string') return p;
  return `mean=${p.mean.join(',')} std=${p.std.join(',')} order=${p.channelOrder} range=${p.range}`;
}

const EXPLICIT_HELP = "a mode (caffe, torch, tf, unit) or 'mean=R,G,B std=R,G,B [order=rgb|bgr] [range=255|1]' (or that as JSON)";

/** `--preprocessing`: a preset name, `mean=… std=… [order=…] [range=…]` (space- or semicolon-separated), or JSON. */
export function parsePreprocessMode(text: string): PreprocessMode {
  const t = String(text).trim();
  if ((PREPROCESS_MODES as readonly string[]).includes(t)) return t as PreprocessPreset;
  let obj: Record<string, unknown>;
  if (t.startsWith('{')) {
    try {
      obj = JSON.parse(t) as Record<string, unknown>;
    } catch {
      throw new UserError(`--preprocessing: '${t}' is not valid JSON; expected ${EXPLICIT_HELP}`);
    }
    obj = { channelOrder: 'rgb', range: 255, ...obj };
  } else if (t.includes('=')) {
    obj = { channelOrder: 'rgb', range: 255 };
    for (const part of t.split(/[\s;]+/).filter(Boolean)) {
      const [k, v] = part.split('=');
      const nums = () => (v ?? '').split(',').map(Number);
      if (k === 'mean' || k === 'std') obj[k] = nums();
      else if (k === 'order' || k === 'channelOrder') obj.channelOrder = v;
      else if (k === 'range') obj.range = Number(v);
      else throw new UserError(`--preprocessing: unknown key '${k}' in '${t}'; expected ${EXPLICIT_HELP}`);
    }
  } else {
    throw new UserError(`--preprocessing: unknown mode '${t}'; expected ${EXPLICIT_HELP}`);
  }
  const problem = preprocessingProblem(obj);
  if (problem) throw new UserError(`--preprocessing: ${problem} in '${t}'; expected ${EXPLICIT_HELP}`);
  return obj as unknown as CustomPreprocessing;
}

