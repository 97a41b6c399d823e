// The short path for library users, as torch-cam's: load a model, explain an image.
//
//   const explainer = await loadCam('checkpoints/my-run');      // starts the best engine if none runs yet
//   const e = await explainer.explain('photo.jpg');              // top-1 class, CAM at input and original size, box
//   fs.writeFileSync('cam.png', await explainer.overlay(e));
//
// The numbers are the CLI's: the same input resize and preprocessing as `gapcam cam`, the same maps, the same
// half-pixel upsampling and min-max normalisation, the same box (src/cam/box.ts).
import * as tf from '@tensorflow/tfjs';
import type { DecodedImage } from '../data/image.js';
import { decodeImage } from '../data/image.js';
import { preprocessPixels } from '../data/preprocess.js';
import type { Box, PreprocessMode } from '../data/types.js';
import type { ScoreMap } from '../eval/boxes.js';
import { ensureEngine, type EngineRequest } from '../engine.js';
import { defaultClassNames, inputSizeOf } from '../models/head.js';
import { loadModelRef } from '../models/refs.js';
import type { ModelMeta } from '../models/types.js';
import { CAM_BOX_COLOR, renderOverlay, type OverlayOptions } from '../render/overlay.js';
import { camBox, DEFAULT_CAM_BOX_FRACTION } from './box.js';
import { normalizeArray, resizeBilinearArray } from './class-maps.js';
import { batchOf, resizeRgb } from './input.js';
import type { CamMethod } from './methods/base.js';
import { createCamMethod, type MethodName } from './registry.js';
import { resolveClassToken } from './service.js';

export interface LoadCamOptions {
  /** Engine to start when none runs yet (default 'auto': the best that starts). */
  engine?: EngineRequest;
  /** Preprocessing for models without meta.json (default 'unit'). */
  preprocessing?: PreprocessMode;
  /** Where run names are looked up (default: the checkpoint root, see paths.ts). */
  checkpointRoot?: string;
}

export interface ExplainOptions {
  /** The class to map: an id or a class name; default the model's top-1 prediction. */
  class?: number | string;
  /** Default 'cam' for CAM-ready models (GAP head), else 'gradcam'. */
  method?: MethodName;
  /** Target layer for gradient and score methods (default: the last layer with a 4-D output). */
  layer?: string;
  /** Overrides the method's ReLU (CAM: off; gradient and score methods: on). */
  relu?: boolean;
  /** Box threshold, as a fraction of the map's maximum (default 0.2, the paper's). */
  boxFraction?: number;
}

export interface ClassScore {
  classId: number;
  className: string;
  probability: number;
}

export interface Explanation extends ClassScore {
  method: MethodName;
  layer: string;
  /** The five most probable classes, best first. */
  top5: ClassScore[];
  /** The map on the target layer's grid, raw (unnormalised; CAM: Σ_k w_k f_k). */
  raw: ScoreMap;
  /** Upsampled to the model input (bilinear, half-pixel centres) and min-max normalised to [0, 1]. */
  map: ScoreMap;
  /** Upsampled to the original image and min-max normalised to [0, 1] (what the overlay shows). */
  mapOriginal: ScoreMap;
  /** The CAM box in original-image pixels (inclusive corners), as `gapcam cam` draws it; undefined when the map has
   *  no positive part. */
  box?: Box;
  /** The decoded original image (8-bit RGB). */
  image: DecodedImage;
}

/** A loaded model ready to explain images. Dispose it when done. */
export class CamExplainer {
  readonly classNames: string[];
  readonly inputSize: [number, number];
  readonly preprocessing: PreprocessMode;
  private readonly methods = new Map<string, CamMethod>();

  constructor(readonly model: tf.LayersModel, readonly meta: ModelMeta | undefined, preprocessing?: PreprocessMode) {
    const out = model.outputs[0].shape;
    this.classNames = meta?.classNames ?? defaultClassNames(out[out.length - 1] as number);
    this.inputSize = meta?.inputSize ?? inputSizeOf(model);
    this.preprocessing = meta?.preprocessing ?? preprocessing ?? 'unit';
  }

  private method(name: MethodName, layer: string | undefined, relu: boolean | undefined): CamMethod {
    const key = JSON.stringify([name, layer, relu]);
    let m = this.methods.get(key);
    if (!m) {
      m = createCamMethod(name, { model: this.model, meta: this.meta }, { layer, relu });
      this.methods.set(key, m);
    }
    return m;
  }

  /** The CAM of one image (a file path or decoded RGB pixels); see Explanation. */
  async explain(image: string | DecodedImage, options: ExplainOptions = {}): Promise<Explanation> {
    const original = typeof image === 'string' ? await decodeImage(image) : image;
    const [H, W] = this.inputSize;
    const pixels = preprocessPixels(await resizeRgb(original, W, H), this.preprocessing);
    const methodName: MethodName = options.method ?? (this.meta ? 'cam' : 'gradcam');
    const method = this.method(methodName, options.layer, options.relu);
    const wanted = options.class === undefined ? undefined
      : typeof options.class === 'number' ? resolveClassToken(String(options.class), this.classNames) : resolveClassToken(options.class, this.classNames);
    const x = batchOf([{ file: '', original, pixels }], this.inputSize);
    let probs: number[], rawData: Float32Array, h: number, w: number, classId: number;
    try {
      const res = method.compute(x, (logits) => [[wanted ?? (tf.tidy(() => logits.argMax(-1).arraySync() as number[]))[0]]]);
      [, h, w] = res.maps.shape;
      rawData = (await res.maps.data()) as Float32Array;
      const p = tf.tidy(() => tf.softmax(res.logits));
      probs = Array.from(await p.data());
      classId = res.classIds[0][0];
      tf.dispose([p, res.maps, res.logits]);
    } finally {
      x.dispose();
    }
    const score = (c: number): ClassScore => ({ classId: c, className: this.classNames[c], probability: probs[c] });
    const top5 = [...probs.keys()].sort((a, b) => probs[b] - probs[a]).slice(0, 5).map(score);
    const raw: ScoreMap = { data: rawData, width: w, height: h };
    return {
      ...score(classId), method: methodName, layer: method.layer, top5, raw,
      map: { data: normalizeArray(resizeBilinearArray(rawData, h, w, H, W)), width: W, height: H },
      mapOriginal: { data: normalizeArray(resizeBilinearArray(rawData, h, w, original.height, original.width)), width: original.width, height: original.height },
      box: camBox(raw, this.inputSize, original, { fraction: options.boxFraction ?? DEFAULT_CAM_BOX_FRACTION }),
      image: original,
    };
  }

  /** The overlay PNG of an explanation at the original size (jet colormap, the CAM box in green), as `gapcam cam`. */
  async overlay(e: Explanation, options: OverlayOptions = {}): Promise<Buffer> {
    return renderOverlay(e.image, e.mapOriginal.data, { boxes: e.box ? [{ box: e.box, color: CAM_BOX_COLOR }] : [], ...options });
  }

  dispose(): void {
    this.model.dispose();
    this.methods.clear();
  }
}

/** Loads a model (a model folder, a training run or run name, a Keras .h5, an http(s) URL or a backbone name, as
 *  every gapcam command) for explaining images; starts the best engine first when the program has not started one. */
export async function loadCam(ref: string, options: LoadCamOptions = {}): Promise<CamExplainer> {
  await ensureEngine(options.engine);
  const loaded = await loadModelRef(ref, { checkpointRoot: options.checkpointRoot });
  return new CamExplainer(loaded.model, loaded.meta, options.preprocessing);
}
