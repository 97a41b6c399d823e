/** Box convention, used everywhere: [x0, y0, x1, y1] in original-image pixels, corners inclusive (the Pascal VOC and
 *  wsolevaluation convention): a box covering exactly pixel column 5 has x0 = x1 = 5 and width x1 - x0 + 1 = 1. */
export type Box = [number, number, number, number];

export type Split = 'train' | 'test' | 'val';

/** One image of a dataset, whatever the layout on disk. Class ids are 0-based inside gapcam. */
export interface ImageRecord {
  id: string;
  path: string;
  label: number;
  /** Original size in pixels (after EXIF orientation). */
  width: number;
  height: number;
  boxes: Box[];
  split: Split;
}

export interface Dataset {
  name: string;
  root: string;
  classNames: string[];
  records: ImageRecord[];
  /** Images left out while loading (only when loading with skipBadImages). */
  skipped?: Skip[];
}

/** Named input normalisations (Keras' `preprocess_input` modes, plus `unit`); see src/data/preprocess.ts. */
export type PreprocessPreset = 'caffe' | 'torch' | 'tf' | 'unit';

/** An explicit normalisation: channels reordered to `channelOrder`, values scaled to `range` (255: 0..255 as decoded,
 *  1: divided by 255), then (x − mean) / std per channel; mean and std are given in that order and range. */
export interface CustomPreprocessing {
  mean: [number, number, number];
  std: [number, number, number];
  channelOrder: 'rgb' | 'bgr';
  range: 1 | 255;
}

/** How images are normalised before they enter a model: a preset name or explicit mean/std. */
export type PreprocessMode = PreprocessPreset | CustomPreprocessing;

/** An image left out because it was bad, when the caller asked to skip bad images instead of stopping. */
export interface Skip {
  file: string;
  reason: string;
}
