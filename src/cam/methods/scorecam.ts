// Score-CAM (Wang et al. 2020): forward passes only. Each activation channel, upsampled to the input size and
// min-max normalised to [0, 1], masks the input; the channel's weight is the softmax probability of the class on
// the masked input (as in the authors' implementation; no baseline subtraction). Masks run in batches
// (options.batchSize, default 32); one set of C masked passes per image serves all its requested classes.
import * as tf from '@tensorflow/tfjs';
import { CamMethod, type CamContext, type MethodFlags } from './base.js';
import { normalizeMaps, upsampleMaps } from '../class-maps.js';

export class ScoreCam extends CamMethod {
  static readonly NAME = 'scorecam';
  static readonly FLAGS: MethodFlags = { gradients: false, maskedForward: true, camHead: false, relu: true };

  protected override channelWeights(ctx: CamContext): tf.Tensor2D {
    const [n, height, width] = ctx.input.shape;
    const channels = ctx.imageActivations.shape[3];
    const batch = Math.max(1, this.options.batchSize ?? 32);
    const perImage: tf.Tensor2D[] = [];
    for (let i = 0; i < n; i++) {
      const cols = tf.tensor1d(ctx.classIds[i], 'int32');
      // [1, H, W, C] masks → [C, H, W, 1]
      const masks = tf.tidy(() => normalizeMaps(upsampleMaps(ctx.imageActivations.slice(i, 1), [height, width])).transpose([3, 1, 2, 0]));
      const image = ctx.input.slice(i, 1);
      const parts: tf.Tensor2D[] = [];
      for (let start = 0; start < channels; start += batch) {
        const size = Math.min(batch, channels - start);
        parts.push(tf.tidy(() => {
          const masked = tf.mul(masks.slice(start, size), image) as tf.Tensor4D;
          return tf.gather(ctx.probabilities(masked), cols, 1) as tf.Tensor2D; // [size, K]
        }));
      }
      const scores = tf.concat(parts, 0); // [C, K]
      perImage.push(scores.transpose() as tf.Tensor2D); // [K, C]
      tf.dispose([...parts, masks, image, cols]);
    }
    return tf.concat(perImage, 0);
  }
}
