// Geometric transforms named in a recipe, applied to an image and its boxes alike. Each transform plans primitive
// operations (extract, resize, flip) for one image from its current size and a seeded generator; the pipeline runs
// the primitives with sharp and composes their exact box geometry (geometry.ts). A new transform is one entry in
// the typed registry `transformKinds`.
//   resize       { op: 'resize', size, mode?: 'exact' | 'shorter' | 'shorter-crop' }
//                exact: to size; shorter: shorter side to size (aspect kept); shorter-crop: shorter side to size,
//                then the centred size×size crop.
//   center-crop  { op: 'center-crop', size }       centred crop (clamped to the image when it is smaller)
//   random-crop  { op: 'random-crop', size, scale?, ratio? }   without scale: a size crop at a random position;
//                with scale [lo, hi]: a random region of lo..hi of the area and aspect ratio in `ratio` (default
//                [3/4, 4/3], log-uniform) resized to size — torchvision's RandomResizedCrop, 10 tries then centre.
//   flip         { op: 'flip', p? }                horizontal flip with probability p (default 0.5)
// Sizes are a number (square) or [height, width]. String form for flags: 'resize:224', 'resize:256:shorter-crop',
// 'center-crop:224', 'random-crop:224', 'random-crop:224:0.08-1', 'flip', 'flip:0.5'.
import { UserError } from '../errors.js';
import type { Rng } from '../util/random.js';
import { boxRegion, composeGeometry, type Geometry } from './geometry.js';
import type { Box } from './types.js';

export type Size = number | [number, number];
export type ResizeMode = 'exact' | 'shorter' | 'shorter-crop';

export interface ResizeTransform { op: 'resize'; size: Size; mode?: ResizeMode }
export interface CenterCropTransform { op: 'center-crop'; size: Size }
export interface RandomCropTransform { op: 'random-crop'; size: Size; scale?: [number, number]; ratio?: [number, number] }
export interface FlipTransform { op: 'flip'; p?: number }
export type Transform = ResizeTransform | CenterCropTransform | RandomCropTransform | FlipTransform;
export type TransformName = Transform['op'];

/** A primitive operation in the current (displayed) frame. */
export type Primitive =
  | { kind: 'extract'; left: number; top: number; width: number; height: number }
  | { kind: 'resize'; width: number; height: number }
  | { kind: 'flip' };

/** The frame being planned: current size and the geometry from the original. */
export interface PlanState {
  width: number;
  height: number;
  geometry: Geometry;
  ops: Primitive[];
}

interface TransformKind<T extends Transform> {
  /** Whether the transform draws random numbers (random transforms are never cached). */
  random(t: T): boolean;
  /** Output size for any input, when fixed ([height, width]). */
  outputSize(t: T): [number, number] | undefined;
  plan(t: T, s: PlanState, rng: Rng): void;
  parse(args: string[]): T;
}

const hw = (size: Size): [number, number] => (typeof size === 'number' ? [size, size] : size);

export function pushExtract(s: PlanState, left: number, top: number, width: number, height: number): void {
  if (left === 0 && top === 0 && width === s.width && height === s.height) return;
  s.ops.push({ kind: 'extract', left, top, width, height });
  s.geometry = composeGeometry(s.geometry, 1, -left, 1, -top, width, height);
  s.width = width;
  s.height = height;
}

/** A region of the current frame (whole pixels covering `box`, geometry.ts boxRegion) as an extract, kept even when it
 *  is the whole frame: sharp turns JPEG shrink-on-load off after an extract, so dropping it would change the pixels. */
export function pushRegion(s: PlanState, box: Box): void {
  const r = boxRegion(box, s.width, s.height);
  s.ops.push({ kind: 'extract', ...r });
  s.geometry = composeGeometry(s.geometry, 1, -r.left, 1, -r.top, r.width, r.height);
  s.width = r.width;
  s.height = r.height;
}

export function pushResize(s: PlanState, width: number, height: number): void {
  if (width === s.width && height === s.height) return;
  s.ops.push({ kind: 'resize', width, height });
  s.geometry = composeGeometry(s.geometry, width / s.width, 0, height / s.height, 0, width, height);
  s.width = width;
  s.height = height;
}

export function pushFlip(s: PlanState): void {
  s.ops.push({ kind: 'flip' });
  s.geometry = composeGeometry(s.geometry, -1, s.width, 1, 0, s.width, s.height);
}

function centerCrop(s: PlanState, h: number, w: number): void {
  const cw = Math.min(w, s.width), ch = Math.min(h, s.height);
  pushExtract(s, Math.round((s.width - cw) / 2), Math.round((s.height - ch) / 2), cw, ch);
}

function positiveInt(v: string, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`transform ${what}: expected a positive integer size, found '${v}'`);
  return n;
}

function parseSize(v: string | undefined, what: string): Size {
  if (!v) throw new UserError(`transform ${what}: needs a size, e.g. ${what}:224 or ${what}:224x192 (height x width)`);
  const m = /^(\d+)x(\d+)$/.exec(v);
  return m ? [positiveInt(m[1], what), positiveInt(m[2], what)] : positiveInt(v, what);
}

function parseRange(v: string, what: string): [number, number] {
  const m = /^([\d.]+)-([\d.]+)$/.exec(v);
  if (!m) throw new UserError(`transform ${what}: expected a range lo-hi such as 0.08-1, found '${v}'`);
  return [Number(m[1]), Number(m[2])];
}

export const transformKinds: { [K in TransformName]: TransformKind<Extract<Transform, { op: K }>> } = {
  resize: {
    random: () => false,
    outputSize: (t) => ((t.mode ?? 'exact') === 'shorter' ? undefined : hw(t.size)),
    plan: (t, s) => {
      const mode = t.mode ?? 'exact';
      if (mode === 'exact') {
        const [h, w] = hw(t.size);
        pushResize(s, w, h);
        return;
      }
      if (typeof t.size !== 'number') throw new UserError(`transform resize: mode '${mode}' takes one number (the shorter side), found [${t.size.join(', ')}]`);
      const scale = t.size / Math.min(s.width, s.height);
      const w = s.width <= s.height ? t.size : Math.max(1, Math.round(s.width * scale));
      const h = s.height < s.width ? t.size : Math.max(1, Math.round(s.height * scale));
      pushResize(s, w, h);
      if (mode === 'shorter-crop') centerCrop(s, t.size, t.size);
    },
    parse: (args) => {
      const mode = (args[1] ?? 'exact') as ResizeMode;
      if (!['exact', 'shorter', 'shorter-crop'].includes(mode)) throw new UserError(`transform resize: mode must be exact, shorter or shorter-crop, found '${mode}'`);
      return { op: 'resize', size: parseSize(args[0], 'resize'), mode };
    },
  },
  'center-crop': {
    random: () => false,
    outputSize: (t) => hw(t.size),
    plan: (t, s) => {
      const [h, w] = hw(t.size);
      centerCrop(s, h, w);
    },
    parse: (args) => ({ op: 'center-crop', size: parseSize(args[0], 'center-crop') }),
  },
  'random-crop': {
    random: () => true,
    outputSize: (t) => hw(t.size),
    plan: (t, s, rng) => {
      const [h, w] = hw(t.size);
      if (!t.scale) {
        const cw = Math.min(w, s.width), ch = Math.min(h, s.height);
        pushExtract(s, Math.floor(rng() * (s.width - cw + 1)), Math.floor(rng() * (s.height - ch + 1)), cw, ch);
        return;
      }
      const [lo, hi] = t.scale;
      const [rlo, rhi] = t.ratio ?? [3 / 4, 4 / 3];
      const area = s.width * s.height;
      let done = false;
      for (let attempt = 0; attempt < 10 && !done; attempt++) {
        const target = area * (lo + rng() * (hi - lo));
        const ratio = Math.exp(Math.log(rlo) + rng() * (Math.log(rhi) - Math.log(rlo)));
        const cw = Math.round(Math.sqrt(target * ratio));
        const ch = Math.round(Math.sqrt(target / ratio));
        if (cw > 0 && ch > 0 && cw <= s.width && ch <= s.height) {
          pushExtract(s, Math.floor(rng() * (s.width - cw + 1)), Math.floor(rng() * (s.height - ch + 1)), cw, ch);
          done = true;
        }
      }
      if (!done) {
        // torchvision's fallback: the largest centred crop within the ratio range.
        const r = s.width / s.height;
        const cw = r < rlo ? s.width : r > rhi ? Math.round(s.height * rhi) : s.width;
        const ch = r < rlo ? Math.round(s.width / rlo) : s.height;
        centerCrop(s, ch, cw);
      }
      pushResize(s, w, h);
    },
    parse: (args) => {
      const t: RandomCropTransform = { op: 'random-crop', size: parseSize(args[0], 'random-crop') };
      if (args[1]) t.scale = parseRange(args[1], 'random-crop');
      if (args[2]) t.ratio = parseRange(args[2], 'random-crop');
      return t;
    },
  },
  flip: {
    random: (t) => (t.p ?? 0.5) > 0 && (t.p ?? 0.5) < 1,
    outputSize: () => undefined,
    plan: (t, s, rng) => {
      const p = t.p ?? 0.5;
      // Always draw, so the random stream does not depend on p.
      if (rng() < p) pushFlip(s);
    },
    parse: (args) => {
      const p = args[0] === undefined ? 0.5 : Number(args[0]);
      if (!(p >= 0 && p <= 1)) throw new UserError(`transform flip: probability must be in [0, 1], found '${args[0]}'`);
      return { op: 'flip', p };
    },
  },
};

const ALIASES: Record<string, TransformName> = {
  resize: 'resize', 'center-crop': 'center-crop', centercrop: 'center-crop', center_crop: 'center-crop',
  'random-crop': 'random-crop', randomcrop: 'random-crop', random_crop: 'random-crop',
  'random-resized-crop': 'random-crop', flip: 'flip', hflip: 'flip', 'horizontal-flip': 'flip',
};

export function transformNames(): TransformName[] {
  return Object.keys(transformKinds) as TransformName[];
}

function kindOf(name: string): TransformName {
  const k = ALIASES[name.toLowerCase()];
  if (!k) throw new UserError(`unknown transform '${name}': expected one of ${transformNames().join(', ')}`);
  return k;
}

/** Parses 'random-crop:224:0.08-1'-style strings; objects are checked and their op name normalised. */
export function parseTransform(spec: string | Transform): Transform {
  if (typeof spec !== 'string') {
    const op = kindOf((spec as { op: string }).op);
    const t = { ...spec, op } as Transform;
    if ('size' in t) {
      const [h, w] = hw(t.size);
      if (![h, w].every((v) => Number.isInteger(v) && v > 0)) throw new UserError(`transform ${op}: size must be positive integers, found ${JSON.stringify(t.size)}`);
    }
    return t;
  }
  const [name, ...args] = spec.split(':');
  const op = kindOf(name);
  return (transformKinds[op] as TransformKind<Transform>).parse(args);
}

function kind(t: Transform): TransformKind<Transform> {
  return transformKinds[t.op] as TransformKind<Transform>;
}

export function isRandom(t: Transform): boolean {
  return kind(t).random(t);
}

/** The fixed [height, width] a recipe produces, or undefined when its size depends on the image. */
export function recipeOutputSize(transforms: Transform[]): [number, number] | undefined {
  let out: [number, number] | undefined;
  for (const t of transforms) {
    if (t.op === 'flip') continue;
    out = kind(t).outputSize(t);
  }
  return out;
}

/** Number of leading transforms that draw no random numbers (their result can be cached). */
export function deterministicPrefixLength(transforms: Transform[]): number {
  let n = 0;
  while (n < transforms.length && !isRandom(transforms[n])) n++;
  return n;
}

/** Plans `transforms` for one image, continuing from `state` (mutated and returned). */
export function planTransforms(transforms: Transform[], state: PlanState, rng: Rng): PlanState {
  for (const t of transforms) kind(t).plan(t, state, rng);
  return state;
}
