// Images → model input for CAM: decode once (src/data/image.ts: EXIF-oriented 8-bit RGB), keep the original for the
// pictures, and resize it to the model's input size with a plain stretching resize (the convention src/eval's
// resizeMapping assumes), then apply the model's preprocessing (src/data/preprocess.ts). The resize is the
// plain-JS Lanczos-3 of src/data/resize.ts, not sharp's, so that the page of `gapcam model export --web` computes
// the very same input in a browser.
import * as tf from '@tensorflow/tfjs';
import { decodeWith, imageSize, type DecodedImage } from '../data/image.js';
import { resizeRgbLanczos3 } from '../data/resize.js';
import { preprocessPixels } from '../data/preprocess.js';
import type { PreprocessMode } from '../data/types.js';

/** Longest side of the pictures cam keeps and draws (originals, overlays, strips) unless told otherwise. */
export const DEFAULT_OVERLAY_SIZE = 2048;

export interface CamInput {
  file: string;
  /** The image as drawn: its original pixels, or shrunk to the overlay size when larger (see loadCamInput). */
  original: DecodedImage;
  /** The image's own size (EXIF orientation applied): boxes and IoU are in these pixels. */
  fullSize: { width: number; height: number };
  /** [H, W, 3] preprocessed pixels at the model's input size. */
  pixels: Float32Array;
}

/** Resizes 8-bit RGB pixels to `width`×`height` (stretching, antialiased Lanczos-3; shared with the web page). */
export function resizeRgb(img: DecodedImage, width: number, height: number): Uint8Array {
  return resizeRgbLanczos3(img.data, img.width, img.height, width, height);
}

/** Decodes `file` and prepares it for a model with input [height, width] and the given preprocessing. An image whose
 *  longest side exceeds `overlaySize` is shrunk while decoding (sharp: JPEG shrink-on-load, PNG streamed), so a
 *  16000×16000 PNG costs a 2048×2048 buffer instead of 768 MB of RGB and GBs of full-size heat maps; the model
 *  input is resized from that picture. */
export async function loadCamInput(file: string, inputSize: [number, number], preprocessing: PreprocessMode, overlaySize = DEFAULT_OVERLAY_SIZE): Promise<CamInput> {
  const fullSize = await imageSize(file);
  const shrink = Math.max(fullSize.width, fullSize.height) > overlaySize;
  const original = await decodeWith(file, file, {}, (s) => (shrink ? s.resize(overlaySize, overlaySize, { fit: 'inside' }) : s));
  const resized = resizeRgb(original, inputSize[1], inputSize[0]);
  return { file, original, fullSize, pixels: preprocessPixels(resized, preprocessing) };
}

/** Stacks prepared inputs into one [N, H, W, 3] batch. */
export function batchOf(inputs: readonly Pick<CamInput, 'file' | 'original' | 'pixels'>[], inputSize: [number, number]): tf.Tensor4D {
  const [h, w] = inputSize;
  const data = new Float32Array(inputs.length * h * w * 3);
  inputs.forEach((inp, i) => data.set(inp.pixels, i * h * w * 3));
  return tf.tensor4d(data, [inputs.length, h, w, 3]);
}
