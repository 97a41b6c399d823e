import * as tf from '@tensorflow/tfjs';
import type { CamModel } from '../../src/models/types.js';

/** input 8×8×3 → 1×1 conv 'cls' with the identity kernel and no bias → GAP. The CAM of class c is exactly the
 *  input's channel c, and the logit of class c is that channel's mean. */
export function channelModel(size = 8): CamModel {
  const input = tf.input({ shape: [size, size, 3] });
  const cls = tf.layers.conv2d({ filters: 3, kernelSize: 1, useBias: false, name: 'cls', kernelInitializer: 'zeros' });
  const y = cls.apply(input) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(y) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: g });
  cls.setWeights([tf.eye(3).reshape([1, 1, 3, 3])]);
  return {
    model,
    meta: {
      classNames: ['red', 'green', 'blue'], preprocessing: 'unit', inputSize: [size, size], headKind: 'conv-gap',
      featureLayer: 'cls', poolingLayer: 'gap', outputIsSoftmax: false,
    },
  };
}
