// Layer-CAM (Jiang et al. 2021): element-wise weights ReLU(∂S_c/∂A_k(i, j)), so it overrides one level up
// (elementWeights) instead of channelWeights. Its channel weights, for inspection, are their spatial means.
import * as tf from '@tensorflow/tfjs';
import { CamMethod, type CamContext, type MethodFlags } from './base.js';

export class LayerCam extends CamMethod {
  static readonly NAME = 'layercam';
  static readonly FLAGS: MethodFlags = { gradients: true, maskedForward: false, camHead: false, relu: true };

  protected override elementWeights(ctx: CamContext): tf.Tensor {
    return tf.relu(ctx.grads as tf.Tensor4D);
  }

  protected override channelWeights(ctx: CamContext): tf.Tensor2D {
    return tf.mean(tf.relu(ctx.grads as tf.Tensor4D), [1, 2]) as tf.Tensor2D;
  }
}
