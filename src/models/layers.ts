// Questions asked about single Layers-model layers by the head detector, the CAM split and the trainer.
import type * as tf from '@tensorflow/tfjs';

/** The activation a layer's config names ('relu', 'softmax', …), if it has one. */
export function activationOf(layer: tf.layers.Layer): string | undefined {
  const a = (layer.getConfig() as { activation?: unknown }).activation;
  return typeof a === 'string' ? a : undefined;
}

/** A standalone softmax: a `Softmax` layer or an `Activation('softmax')`. */
export function isSoftmaxLayer(layer: tf.layers.Layer): boolean {
  const cls = layer.getClassName();
  return cls === 'Softmax' || (cls === 'Activation' && activationOf(layer) === 'softmax');
}
