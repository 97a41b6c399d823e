// Ground-truth masks for PxAP, OpenImages30k style (wsolevaluation's MaskEvaluator): a folder beside the images
// that mirrors them. For an image at <dataset root>/<rel>.<ext>, the mask is <masks>/<rel>.png (any non-zero pixel
// is foreground) and an optional <masks>/<rel>.ignore.png marks pixels left out of PxAP (any non-zero pixel that is
// not foreground: wsolevaluation's "ignore box minus the foreground"). The default <masks> is <dataset root>/masks.
// Masks are resized to the evaluation size with nearest-neighbour sampling as cv2.resize(INTER_NEAREST) does
// (source index ⌊x · src/dst⌋), which is what wsolevaluation's load_mask_image uses.
import fs from 'node:fs';
import type sharp from 'sharp';
import path from 'node:path';
import type { Dataset, ImageRecord } from '../data/types.js';
import { checkImageFile, decodeError, normalizedSharp } from '../data/image.js';
import { UserError } from '../errors.js';
import type { EvalBatch } from './types.js';
import type { PixelMask } from './wsolevaluation.js';

/** The masks folder to use: the one given (must exist), else <dataset root>/masks when present, else none. */
export function resolveMasksDir(dataset: Pick<Dataset, 'root'>, given?: string): string | undefined {
  if (given !== undefined) {
    if (!fs.existsSync(given) || !fs.statSync(given).isDirectory()) throw new UserError(`--masks: expected a folder of masks mirroring the images, found no folder ${path.resolve(given)}`);
    return path.resolve(given);
  }
  const dflt = path.join(dataset.root, 'masks');
  return fs.existsSync(dflt) && fs.statSync(dflt).isDirectory() ? dflt : undefined;
}

/** Where the mask (and ignore mask) of an image are. */
export function maskFiles(rec: Pick<ImageRecord, 'path'>, datasetRoot: string, masksDir: string): { mask: string; ignore: string } {
  const rel = path.relative(datasetRoot, rec.path);
  const stem = path.join(masksDir, rel.slice(0, rel.length - path.extname(rel).length));
  return { mask: `${stem}.png`, ignore: `${stem}.ignore.png` };
}

/** cv2.resize(INTER_NEAREST) of a one-channel image: dst(x, y) = src(⌊x·sw/dw⌋, ⌊y·sh/dh⌋). */
export function resizeNearest(src: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array {
  const out = new Uint8Array(dw * dh);
  const fx = sw / dw;
  const fy = sh / dh;
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(Math.floor(y * fy), sh - 1);
    for (let x = 0; x < dw; x++) out[y * dw + x] = src[sy * sw + Math.min(Math.floor(x * fx), sw - 1)];
  }
  return out;
}

/** One band of `file`, non-zero exactly where some colour channel is (after the decode's usual normalisation),
 *  computed by libvips while decoding: a huge mask is never held as RGB (an 8000×6000 mask: +73 MiB of peak memory,
 *  against +186 MiB for the RGB decode and its grey copy). */
async function nonZero(file: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  await checkImageFile(file);
  try {
    // R + G + B (clamped to 255) is 0 exactly where every channel is; sharp applies recomb after flattening the alpha
    // (its bandbool runs before it, where alpha would count)
    const sum = [[1, 1, 1], [0, 0, 0], [0, 0, 0]];
    const { data, info } = await normalizedSharp(file).recomb(sum as sharp.Matrix3x3).extractChannel(0).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { data: new Uint8Array(data.buffer, data.byteOffset, info.width * info.height), width: info.width, height: info.height };
  } catch (err) {
    throw decodeError(file, err);
  }
}

/** An image's mask at width × height (1 foreground, 0 background, 255 ignored), or undefined when it has none. */
export async function loadMask(rec: Pick<ImageRecord, 'path'>, datasetRoot: string, masksDir: string, width: number, height: number): Promise<PixelMask | undefined> {
  const files = maskFiles(rec, datasetRoot, masksDir);
  if (!fs.existsSync(files.mask)) return undefined;
  const m = await nonZero(files.mask);
  const fg = resizeNearest(m.data, m.width, m.height, width, height);
  const data = new Uint8Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = fg[i] > 0 ? 1 : 0;
  if (fs.existsSync(files.ignore)) {
    const ig = await nonZero(files.ignore);
    const ignore = resizeNearest(ig.data, ig.width, ig.height, width, height);
    for (let i = 0; i < data.length; i++) if (ignore[i] > 0 && data[i] === 0) data[i] = 255;
  }
  return { data, width, height };
}

/** A batch source whose batches carry each image's mask at the input size (for PxAP). */
export function withMasks<O extends { inputSize: [number, number] }>(source: (records: readonly ImageRecord[], options: O) => AsyncIterable<EvalBatch>,
  dataset: Pick<Dataset, 'root'>, masksDir: string): (records: readonly ImageRecord[], options: O) => AsyncIterable<EvalBatch> {
  return (records, options) => {
    const inner = source(records, options);
    const [h, w] = options.inputSize;
    return (async function* () {
      for await (const b of inner) {
        yield { ...b, masks: await Promise.all(b.records.map((r) => loadMask(r, dataset.root, masksDir, w, h))) };
      }
    })();
  };
}
