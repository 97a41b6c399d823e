// CAM (Zhou et al. 2016): exact, no gradients. gap-dense: w_k^c is the Dense kernel column of class c;
// conv-gap: the class-score map's channel c is M_c, i.e. a one-hot channel weight.
import * as tf from '@tensorflow/tfjs';
import { detectCamHead } from '../../models/head.js';
import { CamMethod, type CamContext, type MethodFlags } from './base.js';

export class Cam extends CamMethod {
  static readonly NAME = 'cam';
  static readonly FLAGS: MethodFlags = { gradients: false, maskedForward: false, camHead: true, relu: false };

  protected override channelWeights(ctx: CamContext): tf.Tensor2D {
    const meta = this.target.meta ?? (detectCamHead(this.target.model) as Exclude<ReturnType<typeof detectCamHead>, string>);
    const rows = tf.tensor1d(ctx.rowClasses, 'int32');
    if (meta.headKind === 'gap-dense') {
      const kernel = this.target.model.getLayer(meta.classifierLayer as string).getWeights()[0] as tf.Tensor2D; // [C, classes]
      return tf.gather(kernel.transpose(), rows) as tf.Tensor2D;
    }
    const channels = ctx.imageActivations.shape[3];
    return tf.oneHot(rows, channels).toFloat() as tf.Tensor2D;
  }
}
