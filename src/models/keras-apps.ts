// Keras applications recognised in a loaded model (by the model name Keras gives them, else by their signature
// layers), so a model file without gapcam's meta.json gets the preprocessing it was trained with and a sensible
// place to attach the GAP head. Preprocessing per family as in keras.applications.<family>.preprocess_input.
import type * as tf from '@tensorflow/tfjs';
import type { PreprocessMode, PreprocessPreset } from '../data/types.js';

export interface KerasApplication {
  family: string;
  preprocessing: PreprocessPreset;
  /** The last spatial feature map (where Keras' own `include_top` head begins); undefined when it varies. */
  cutLayer?: string;
  /** Keras' model names of the family. */
  names: RegExp;
  /** Layers that only this family has (found when the model was renamed). */
  signature: string[];
}

export const KERAS_APPLICATIONS: readonly KerasApplication[] = [
  { family: 'VGG', names: /^vgg(16|19)$/, preprocessing: 'caffe', cutLayer: 'block5_conv3', signature: ['block5_conv3', 'block5_pool'] },
  { family: 'ResNetV2', names: /^resnet(50|101|152)v2$/, preprocessing: 'tf', cutLayer: 'post_relu', signature: ['conv5_block3_out', 'post_relu'] },
  { family: 'ResNet', names: /^resnet(50|101|152)$/, preprocessing: 'caffe', cutLayer: 'conv5_block3_out', signature: ['conv1_conv', 'conv5_block3_out'] },
  { family: 'MobileNetV2', names: /^mobilenetv2_[\d.]+_\d+$/, preprocessing: 'tf', cutLayer: 'out_relu', signature: ['block_16_project', 'out_relu'] },
  { family: 'MobileNet', names: /^mobilenet_[\d.]+_\d+$/, preprocessing: 'tf', cutLayer: 'conv_pw_13_relu', signature: ['conv_pw_13_relu'] },
  { family: 'InceptionResNetV2', names: /^inception_resnet_v2$/, preprocessing: 'tf', cutLayer: 'conv_7b_ac', signature: ['conv_7b_ac'] },
  { family: 'InceptionV3', names: /^inception_v3$/, preprocessing: 'tf', cutLayer: 'mixed10', signature: ['mixed10'] },
  { family: 'Xception', names: /^xception$/, preprocessing: 'tf', cutLayer: 'block14_sepconv2_act', signature: ['block14_sepconv2_act'] },
  { family: 'DenseNet', names: /^densenet(121|169|201)$/, preprocessing: 'torch', cutLayer: 'relu', signature: ['conv5_block16_concat', 'bn'] },
  { family: 'NASNet', names: /^nasnet/i, preprocessing: 'tf', signature: [] },
];

/** The Keras application family of `model`, by its name, else by its signature layers; undefined when unknown. */
export function identifyKerasApplication(model: tf.LayersModel): KerasApplication | undefined {
  const byName = KERAS_APPLICATIONS.find((a) => a.names.test(model.name));
  if (byName) return byName;
  const names = new Set(model.layers.map((l) => l.name));
  return KERAS_APPLICATIONS.find((a) => a.signature.length > 0 && a.signature.every((n) => names.has(n)));
}

/** What a model without meta.json is fed when nothing says otherwise: [0, 1] RGB. */
export const FALLBACK_PREPROCESSING: PreprocessPreset = 'unit';

const warned = new Set<string>();

/** The preprocessing a model without meta.json gets: its Keras application's, else 'unit' with a one-time warning
 *  (per source, to stderr unless `warn` is given) naming the mode assumed. */
export function assumedPreprocessing(model: tf.LayersModel, source: string, warn: (line: string) => void = (l) => process.stderr.write(l + '\n')): PreprocessMode {
  const app = identifyKerasApplication(model);
  if (app) return app.preprocessing;
  if (!warned.has(source)) {
    warned.add(source);
    warn(`gapcam: ${source} has no meta.json and is not a known Keras application; assuming preprocessing '${FALLBACK_PREPROCESSING}' ` +
      '([0, 1] RGB): give --preprocessing (or the recipe\'s data.preprocessing) if it was trained otherwise');
  }
  return FALLBACK_PREPROCESSING;
}
