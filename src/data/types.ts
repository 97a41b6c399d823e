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

export type PreprocessMode = 'caffe' | 'torch' | 'unit';

/** An image left out because it was bad, when the caller asked to skip bad images instead of stopping. */
export interface Skip {
  file: string;
  reason: string;
}
