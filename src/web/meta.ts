// meta.json of a web export: the model's CAM meta (classes, preprocessing, input size, CAM layer and head) plus what
// the page needs to show it as `gapcam cam` does. Browser-safe (types and constants only).
import type { ModelMeta } from '../models/types.js';
import type { WeightQuantization } from '../models/quantize.js';

export interface WebMeta extends ModelMeta {
  web: {
    /** Where the model was exported from. */
    source: string;
    /** The folder of the tfjs model, relative to index.html. */
    modelDir: string;
    /** The same model as a script (for file://, where browsers refuse fetch), inside modelDir. */
    inlineScript: string;
    /** float32 (as trained) or the quantisation of the weights. */
    weights: 'float32' | WeightQuantization;
    /** The CAM box rule: pixels ≥ this fraction of the raw map's maximum, largest component (the paper's 0.2). */
    camThreshold: number;
  };
}

export const WEB_MODEL_DIR = 'model';
export const WEB_INLINE_SCRIPT = 'model-inline.js';
export const WEB_SCRIPT = 'gapcam-web.js';
