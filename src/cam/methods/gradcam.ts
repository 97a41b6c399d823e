// Grad-CAM (Selvaraju et al. 2017): w_k^c = mean_ij ∂S_c/∂A_k(i, j).
import * as tf from '@tensorflow/tfjs';
import { CamMethod, type CamContext, type MethodFlags } from './base.js';

export class GradCam extends CamMethod {
  static readonly NAME = 'gradcam';
  static readonly FLAGS: MethodFlags = { gradients: true, maskedForward: false, camHead: false, relu: true };

  protected override channelWeights(ctx: CamContext): tf.Tensor2D {
    return tf.mean(ctx.grads as tf.Tensor4D, [1, 2]) as tf.Tensor2D;
  }
}
