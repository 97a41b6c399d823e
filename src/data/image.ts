// Image decoding with sharp: one place that turns any JPEG/PNG/WebP/TIFF/GIF on disk into 8-bit RGB, HWC.
// EXIF orientation is applied first (so width/height are the image as a viewer shows it), alpha is flattened onto
// a background colour (white unless asked otherwise), greyscale/CMYK/16-bit inputs are converted to 8-bit sRGB.
// Missing, empty, truncated or non-image files raise a one-line UserError naming the file.
import fs from 'node:fs';
import sharp from 'sharp';
import { UserError } from '../errors.js';

/** A decoded image: 8-bit RGB, row-major HWC (index = (y * width + x) * 3 + c). */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeOptions {
  /** Background that transparent pixels are composited onto, as RGB 0..255 (default white [255, 255, 255]). */
  background?: [number, number, number];
  /** sharp's failOn for pixel data (default 'error'; see decodeWith for how truncated JPEGs are handled). */
  failOn?: 'none' | 'truncated' | 'error' | 'warning';
}

// sharp's own thread pool decodes in parallel; the pipeline adds Promise-level concurrency on top.
sharp.cache(false);

/** Throws a one-line UserError unless `file` exists, is a file and is not empty; returns its stats. */
export async function checkImageFile(file: string): Promise<fs.Stats> {
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new UserError(`image file not found: ${file}`);
  }
  if (!st.isFile()) throw new UserError(`image path is not a file: ${file}`);
  if (st.size === 0) throw new UserError(`image file is empty (0 bytes): ${file}`);
  return st;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
}

/** Wraps a sharp failure into a one-line UserError naming the file. */
export function decodeError(file: string, err: unknown): UserError {
  if (err instanceof UserError) return err;
  return new UserError(`cannot decode image ${file}: ${firstLine(err)} (expected a readable JPEG/PNG/WebP/TIFF/GIF file)`);
}

/**
 * A sharp instance reading `file`, already normalised: EXIF-oriented, alpha flattened, 8-bit sRGB, 3 channels.
 * Callers may chain geometric operations (extract, resize, flop) and must finish with `.raw()`.
 * `input` may be a Buffer holding the file's bytes (to avoid reading it twice).
 */
export function normalizedSharp(input: string | Buffer, options: DecodeOptions = {}): sharp.Sharp {
  const [r, g, b] = options.background ?? [255, 255, 255];
  return sharp(input, { failOn: options.failOn ?? 'error', limitInputPixels: 1 << 28 })
    .autoOrient()
    .flatten({ background: { r, g, b } })
    .toColourspace('srgb');
}

/** Converts sharp's raw output to packed 3-channel RGB (sharp already gives 3 channels; this guards the rest). */
export function toRgb(data: Buffer, width: number, height: number, channels: number): Uint8Array {
  const n = width * height;
  if (channels === 3) return new Uint8Array(data.buffer, data.byteOffset, n * 3);
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    if (channels >= 3) {
      out[i * 3] = data[i * channels];
      out[i * 3 + 1] = data[i * channels + 1];
      out[i * 3 + 2] = data[i * channels + 2];
    } else {
      const v = data[i * channels];
      out[i * 3] = v;
      out[i * 3 + 1] = v;
      out[i * 3 + 2] = v;
    }
  }
  return out;
}

/** Runs a normalised sharp chain to raw RGB, turning sharp errors into one-line UserErrors naming `file`. */
export async function toRawRgb(file: string, pipeline: sharp.Sharp): Promise<DecodedImage> {
  let result: { data: Buffer; info: sharp.OutputInfo };
  try {
    result = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    await checkImageFile(file);
    throw decodeError(file, err);
  }
  const { data, info } = result;
  return { data: toRgb(data, info.width, info.height, info.channels), width: info.width, height: info.height };
}

// libvips reports JPEG truncation as "premature end …"; under concurrency sharp sometimes loses the message and
// reports "Unknown error", so that case is checked the same way.
const TRUNCATION = /premature end|truncat|end of file|unexpected end|unknown error/i;

/**
 * Whether a JPEG that libjpeg calls "premature end" really lacks image data: decoded leniently, a JPEG cut short
 * has its missing blocks filled with one constant value, so its last rows are uniform. Photos that only lack the
 * end-of-image marker (common on the web; every viewer shows them whole) have real pixels there.
 */
async function reallyTruncated(input: string | Buffer): Promise<boolean> {
  try {
    const { data, info } = await sharp(input, { failOn: 'none' }).raw().toBuffer({ resolveWithObject: true });
    const rows = Math.min(8, info.height);
    const start = (info.height - rows) * info.width * info.channels;
    let lo = 255, hi = 0;
    for (let i = start; i < data.length; i++) { lo = Math.min(lo, data[i]); hi = Math.max(hi, data[i]); }
    return hi - lo <= 2;
  } catch {
    return true;
  }
}

/**
 * Runs `chain` (extract/resize/… on a normalised sharp instance) on `input` to raw RGB. Missing, empty and
 * unreadable files are one-line UserErrors naming `file`. A JPEG reported as ending prematurely is decoded
 * leniently when its pixels are all there (only the end marker is missing) and rejected when data is missing.
 */
export async function decodeWith(file: string, input: string | Buffer, options: DecodeOptions, chain: (s: sharp.Sharp) => sharp.Sharp = (s) => s): Promise<DecodedImage> {
  try {
    return await toRawRgb(file, chain(normalizedSharp(input, options)));
  } catch (err) {
    if (options.failOn === 'none' || !(err instanceof UserError) || !TRUNCATION.test(err.message)) throw err;
    if (await reallyTruncated(input)) {
      throw new UserError(`cannot decode image ${file}: the file is truncated (image data missing)`);
    }
    return toRawRgb(file, chain(normalizedSharp(input, { ...options, failOn: 'none' })));
  }
}

/** Decodes an image file to 8-bit RGB HWC (EXIF orientation applied; grey/CMYK/16-bit/alpha → 8-bit RGB). */
export async function decodeImage(file: string, options: DecodeOptions = {}): Promise<DecodedImage> {
  await checkImageFile(file);
  return decodeWith(file, file, options);
}

/** Decodes `file` fully (every pixel is read, so truncated or corrupt data fails here) into a tiny thumbnail: a
 *  check that costs a few MB whatever the image's size (sharp shrinks while decoding). */
export async function checkDecodes(file: string): Promise<void> {
  await checkImageFile(file);
  await decodeWith(file, file, {}, (s) => s.resize(64, 64, { fit: 'inside' }));
}

/** The size of an image as displayed (EXIF orientation applied), read from its header without decoding pixels. */
export async function imageSize(file: string): Promise<{ width: number; height: number }> {
  await checkImageFile(file);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(file).metadata();
  } catch (err) {
    throw decodeError(file, err);
  }
  if (!meta.width || !meta.height) throw new UserError(`cannot read the size of image ${file}: no width/height in its header`);
  const swap = (meta.orientation ?? 1) >= 5;
  return swap ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
}

/** Encodes 8-bit RGB HWC pixels as PNG (used by the embedded dataset and by tests). */
export async function encodePng(img: DecodedImage): Promise<Buffer> {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  })
    .png({ compressionLevel: 6 })
    .toBuffer();
}
