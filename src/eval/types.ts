// What evaluation takes and produces: settings, batches, per-image results, metrics (shared by the evaluator, the
// report writer and the commands).
import type * as tf from '@tensorflow/tfjs';
import type { Box, ImageRecord } from '../data/types.js';
import type { BoxSelection, GridMapping } from './boxes.js';
import type { ClassificationResult } from './classification.js';
import type { PixelMask, Protocol } from './wsolevaluation.js';
import type { LocalizationAccuracyResult, MaxBoxAccResult, RuleNormalization, Thresholding } from './localization.js';
import { DEFAULT_CAM_BOX_FRACTION } from './localization.js';

export interface EvaluationSettings {
  /** Which geometry produces the localization numbers: gapcam's exact one (default) or wsolevaluation's, bit for bit
   *  (src/eval/wsolevaluation.ts). */
  protocol: Protocol;
  /** Paper rule: keep pixels ≥ camThreshold of the (min-max normalised) map. */
  camThreshold: number;
  /** Boxes for the fixed-rule metrics (top-1/top-5/GT-known loc): the largest component (paper) or all of them. */
  boxes: BoxSelection;
  normalization: RuleNormalization;
  /** Step of the τ grid of MaxBoxAcc / MaxBoxAccV2 (np.arange(0, 1, step)). */
  sweepStep: number;
  thresholding: Thresholding;
  /** IoU for top-1/top-5/GT-known loc. */
  iouThreshold: number;
  flip: boolean;
  /** k of top-k accuracy and top-k loc. */
  k: number;
  /** σ of the center-gaussian baseline (image spans [−1, 1]). */
  centerSigma: number;
}

export const DEFAULT_EVALUATION_SETTINGS: EvaluationSettings = {
  protocol: 'gapcam',
  camThreshold: DEFAULT_CAM_BOX_FRACTION,
  boxes: 'largest',
  normalization: 'max',
  sweepStep: 0.01,
  thresholding: 'wsol-uint8',
  iouThreshold: 0.5,
  flip: false,
  k: 5,
  centerSigma: 0.5,
};

/** One batch to evaluate. `images` is the preprocessed model input; the evaluator does not dispose it. */
export interface EvalBatch {
  images: tf.Tensor4D;
  records: ImageRecord[];
  /** Where each image's input grid sits on the original image; default: a plain resize of the record's
   *  width × height to the input size. */
  mappings?: GridMapping[];
  /** Ground-truth masks at the input size (1 foreground, 0 background, other values ignored) for PxAP; an image
   *  without one is left out of PxAP. */
  masks?: (PixelMask | undefined)[];
}

/** One line of the per-image CSV. */
export interface ImageResult {
  id: string;
  /** Dataset class id and the model class it maps to. */
  label: number;
  modelClass: number;
  /** Model classes by descending (flip-averaged) logit, the first k. */
  ranked: number[];
  correct: boolean;
  /** Fixed rule: IoU of the true class's box(es) with the GT, and of the top-1 class's. null: no GT box. */
  iouTrue: number | null;
  iouTop1: number | null;
  /** Fixed-rule boxes of the true class's map, in original pixels ([] when the map has no foreground). */
  boxesTrue: Box[];
  /** IoU of the center baseline's fixed-rule box. */
  iouCenter: number | null;
}

export interface LocalizationMetrics {
  /** Images with at least one GT box (the localization denominators). */
  count: number;
  rule: LocalizationAccuracyResult;
  maxBoxAcc: MaxBoxAccResult;
  maxBoxAccV2: MaxBoxAccResult;
}

export interface EvaluationMetrics {
  images: number;
  classification: ClassificationResult;
  localization: LocalizationMetrics;
  centerBaseline: LocalizationMetrics;
  /** Pixel average precision (percent) of the true class's map, and of the center baseline, on the images that have
   *  a mask (absent when none has). */
  pxap?: { images: number; value: number; center: number };
}
