// The contract every dataset layout adapter honours: one file per layout, one line in adapters/index.ts.
import type { Dataset, Split } from '../types.js';

export interface LayoutOptions {
  /** Dataset name to record (default: the folder's name). */
  name?: string;
  /** Leave bad images out (counted in Dataset.skipped) instead of stopping at the first one. */
  skipBadImages?: boolean;
  /** For layouts without a split of their own: fraction of each class put in the test split (default 0.3). */
  testFraction?: number;
  /** For layouts without a split of their own: a fixed number of training images per class (Caltech-101 style:
   *  30), the rest test (at most testPerClass when given). Overrides testFraction. */
  trainPerClass?: number;
  testPerClass?: number;
  /** For layouts without a split of their own: seed of the fixed per-class split (default 'gapcam-split'). */
  splitSeed?: string;
  /** VOC: take the class from the folder name or from each XML's first <object><name> (default: folder when several folders are combined, else name). */
  classFrom?: 'folder' | 'name';
  /** VOC: extra folders combined with `root` into one multi-class dataset. */
  extraFolders?: string[];
}

export interface LayoutAdapter {
  /** One line for listings. */
  describe: string;
  /** Whether `root` (a folder or file) looks like this layout. */
  detect(root: string): boolean;
  load(root: string, options: LayoutOptions): Promise<Dataset>;
}

export const DEFAULT_TEST_FRACTION = 0.3;
export const DEFAULT_SPLIT_SEED = 'gapcam-split';

export function parseSplit(value: string): Split | undefined {
  const v = value.trim().toLowerCase();
  if (v === 'train' || v === 'test' || v === 'val') return v;
  if (v === 'valid' || v === 'validation') return 'val';
  return undefined;
}
