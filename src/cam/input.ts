// Images → model input for CAM: decode once (src/data/image.ts: EXIF-oriented 8-bit RGB), keep the original for the
// pictures, and resize it to the model's input size with a plain stretching resize (sharp, fit 'fill'; the
// convention src/eval's resizeMapping assumes), then apply the model's preprocessing (src/data/preprocess.ts).
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { decodeImage, type DecodedImage } from '../data/image.js';
import { preprocessPixels } from '../data/preprocess.js';
import type { PreprocessMode } from '../data/types.js';

export interface CamInput {
  file: string;
  original: DecodedImage;
  /** [H, W, 3] preprocessed pixels at the model's input size. */
  pixels: Float32Array;
}

/** Resizes 8-bit RGB pixels to `width`×`height` (stretching, sharp's default lanczos3 kernel). */
export async function resizeRgb(img: DecodedImage, width: number, height: number): Promise<Uint8Array> {
  if (img.width === width && img.height === height) return img.data;
  const buf = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Decodes `file` and prepares it for a model with input [height, width] and the given preprocessing. */
export async function loadCamInput(file: string, inputSize: [number, number], preprocessing: PreprocessMode): Promise<CamInput> {
  const original = await decodeImage(file);
  const resized = await resizeRgb(original, inputSize[1], inputSize[0]);
  return { file, original, pixels: preprocessPixels(resized, preprocessing) };
}

/** Stacks prepared inputs into one [N, H, W, 3] batch. */
export function batchOf(inputs: CamInput[], inputSize: [number, number]): tf.Tensor4D {
  const [h, w] = inputSize;
  const data = new Float32Array(inputs.length * h * w * 3);
  inputs.forEach((inp, i) => data.set(inp.pixels, i * h * w * 3));
  return tf.tensor4d(data, [inputs.length, h, w, 3]);
}
