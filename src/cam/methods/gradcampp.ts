// Grad-CAM++ (Chattopadhyay et al. 2018), in the closed form of its paper and of torch-cam / pytorch-grad-cam:
// α_ij = g² / (2 g² + Σ_ab A_ab · g³) (0 where g = 0), w_k = Σ_ij α_ij · ReLU(g_ij), with g = ∂S_c/∂A_k.
import * as tf from '@tensorflow/tfjs';
import { CamMethod, type CamContext, type MethodFlags } from './base.js';

export class GradCamPlusPlus extends CamMethod {
  static readonly NAME = 'gradcam++';
  static readonly FLAGS: MethodFlags = { gradients: true, maskedForward: false, camHead: false, relu: true };

  protected override channelWeights(ctx: CamContext): tf.Tensor2D {
    const g = ctx.grads as tf.Tensor4D;
    const g2 = tf.square(g);
    const g3 = tf.mul(g2, g);
    const sumA = tf.sum(ctx.activations, [1, 2], true);
    const denom = tf.add(tf.mul(g2, 2), tf.mul(sumA, g3));
    const safe = tf.where(tf.notEqual(denom, 0), denom, tf.onesLike(denom));
    const alpha = tf.where(tf.notEqual(g, 0), tf.div(g2, safe), tf.zerosLike(g));
    return tf.sum(tf.mul(alpha, tf.relu(g)), [1, 2]) as tf.Tensor2D;
  }
}
