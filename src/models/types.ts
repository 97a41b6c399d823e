import type * as tf from '@tensorflow/tfjs';
import type { PreprocessMode } from '../data/types.js';

/** How the class score map is formed from the last feature map. */
export type HeadKind =
  /** feature map → GlobalAveragePooling → Dense (the CAM paper's VGGnet-GAP): M_c = Σ_k w_k^c f_k. */
  | 'gap-dense'
  /** conv producing one channel per class → GlobalAveragePooling (NiN / darknet-tiny): M_c is channel c. */
  | 'conv-gap';

/** Written as meta.json beside every model gapcam saves; what CAM, evaluation and features need to use the model. */
export interface ModelMeta {
  classNames: string[];
  preprocessing: PreprocessMode;
  /** [height, width] of the model input. */
  inputSize: [number, number];
  headKind: HeadKind;
  /** The last spatial feature map (the CAM's f_k for gap-dense; the class-score map for conv-gap). */
  featureLayer: string;
  poolingLayer: string;
  /** The Dense layer after pooling (gap-dense only). */
  classifierLayer?: string;
  /** Whether the model's output is already softmax probabilities (true) or logits. */
  outputIsSoftmax: boolean;
  recipe?: string;
  backbone?: string;
}

export interface CamModel {
  model: tf.LayersModel;
  meta: ModelMeta;
}
