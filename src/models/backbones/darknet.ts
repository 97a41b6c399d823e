// darknet-tiny: the Darknet reference "tiny" ImageNet classifier as a tfjs Layers model folder (model.json + shards
// + classes.txt). Its head is already conv → GAP (conv2d_16: 1×1, 1000 filters); the last feature map is
// leaky_re_lu_15 (128 channels, 14×14 at 224×224), where a new GAP head attaches.
import type * as tf from '@tensorflow/tfjs';
import * as tfl from '@tensorflow/tfjs';
import { UserError } from '../../errors.js';
import { loadLayersModel } from '../layers-io.js';

export const DARKNET_TINY_CUT = 'leaky_re_lu_15';

export interface DarknetTinyOptions {
  /** The model folder (or model.json / http(s) URL). Required: the library holds no default location. */
  weights?: string;
  /** Keep the class-score head (conv2d_16 → GAP; default true), else end at leaky_re_lu_15. */
  includeTop?: boolean;
  /** The network is fully convolutional: any [h, w, 3] input (multiples of 16 keep the maps aligned). */
  inputShape?: [number, number, number];
}

export async function buildDarknetTiny(opts: DarknetTinyOptions = {}): Promise<tf.LayersModel> {
  if (!opts.weights || opts.weights === 'imagenet') {
    throw new UserError('darknet-tiny: give its tfjs model folder as the weights (e.g. --weights ../shared/models/darknet-tiny); it is not downloadable');
  }
  const full = await loadLayersModel(opts.weights, opts.inputShape ? { inputShape: opts.inputShape } : {});
  if (opts.includeTop ?? true) return full;
  let cut: tf.SymbolicTensor;
  try {
    cut = full.getLayer(DARKNET_TINY_CUT).output as tf.SymbolicTensor;
  } catch {
    throw new UserError(`darknet-tiny: ${opts.weights} has no layer '${DARKNET_TINY_CUT}'; expected the darknet-tiny model`);
  }
  return tfl.model({ inputs: full.inputs, outputs: cut, name: 'darknet_tiny_features' });
}
