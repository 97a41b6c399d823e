// XGrad-CAM (Fu et al. 2020): w_k = Σ_ij (A_k(i, j) / Σ_ab A_k(a, b)) · ∂S_c/∂A_k(i, j) (0 for an all-zero channel).
import * as tf from '@tensorflow/tfjs';
import { CamMethod, type CamContext, type MethodFlags } from './base.js';

export class XGradCam extends CamMethod {
  static readonly NAME = 'xgradcam';
  static readonly FLAGS: MethodFlags = { gradients: true, maskedForward: false, camHead: false, relu: true };

  protected override channelWeights(ctx: CamContext): tf.Tensor2D {
    const a = ctx.activations;
    const sumA = tf.sum(a, [1, 2], true);
    const safe = tf.where(tf.notEqual(sumA, 0), sumA, tf.onesLike(sumA));
    const num = tf.sum(tf.mul(a, ctx.grads as tf.Tensor4D), [1, 2], true);
    return tf.where(tf.notEqual(sumA, 0), tf.div(num, safe), tf.zerosLike(num)).reshape([a.shape[0], a.shape[3]]) as tf.Tensor2D;
  }
}
