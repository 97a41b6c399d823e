// The backbone registry: a new backbone is one file in ./backbones plus one line in BACKBONES.
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { PreprocessMode } from '../data/types.js';
import { VGG_ARCHS, buildVgg, vggDefaultCut, vggPoolsBeforeLastConv, type VggName, type VggOptions } from './backbones/vgg.js';
import { buildDarknetTiny, DARKNET_TINY_CUT } from './backbones/darknet.js';
import { applyVggWeights, type PretrainedOptions } from './pretrained.js';

export interface BackboneBuildOptions extends VggOptions, PretrainedOptions {
  /** 'imagenet' (download the official file), a Keras .h5 weights file, or a tfjs model folder (darknet-tiny). */
  weights?: string;
}

export interface BackboneSpec {
  description: string;
  /** [height, width, channels] the backbone is built for by default. */
  defaultInputShape: [number, number, number];
  /** Where the GAP head attaches by default (VGG: the last conv, e.g. block5_conv3). */
  defaultCutLayer: string;
  /** Downsampling from the input to the feature map at the default cut (VGG16: 16 → 14×14 at 224). */
  featureStride: number;
  /** Channels of the feature map at the default cut. */
  featureChannels: number;
  preprocessing: PreprocessMode;
  /** Where pretrained weights come from (shown by `gapcam models`). */
  weightSource: string;
  /** The build reads its weights from a folder given as `weights` (it cannot be built from scratch). */
  needsWeights?: boolean;
  build(opts?: BackboneBuildOptions): Promise<tf.LayersModel>;
}

function vggSpec(name: VggName, description: string, preprocessing: PreprocessMode = 'caffe', weightSource = 'none (random initialisation)'): BackboneSpec {
  const cfg = VGG_ARCHS[name].cfg;
  const lastChannels = [...cfg].reverse().find((c) => c !== 'M') as number;
  const defaultInputShape: [number, number, number] = name === 'vgg-tiny' ? [112, 112, 3] : name === 'vgg-tiny-bn' ? [64, 64, 3] : [224, 224, 3];
  return {
    description,
    defaultInputShape,
    defaultCutLayer: vggDefaultCut(VGG_ARCHS[name]),
    featureStride: 2 ** vggPoolsBeforeLastConv(cfg),
    featureChannels: lastChannels,
    preprocessing,
    weightSource,
    build: async (opts = {}) => {
      if (opts.weights === 'imagenet' && (opts.includeTop ?? true) && (opts.classes ?? 1000) !== 1000) {
        throw new UserError(`${name}: --weights imagenet with the classifier top needs classes = 1000; got ${opts.classes} (build without the top, or cut it with surgery)`);
      }
      const model = buildVgg(name, { ...opts, inputShape: opts.inputShape ?? defaultInputShape });
      if (opts.weights) {
        try {
          await applyVggWeights(model, name, opts.weights, { ...opts, includeTop: opts.includeTop ?? true });
        } catch (err) {
          model.dispose();
          throw err;
        }
      }
      return model;
    },
  };
}

const KERAS_IMAGENET_SOURCE = "--weights imagenet: Keras' official ImageNet file (md5-checked; reused from Keras' cache)";

export const BACKBONES = {
  vgg11: vggSpec('vgg11', 'VGG11 (configuration A), Keras layer names'),
  vgg13: vggSpec('vgg13', 'VGG13 (configuration B), Keras layer names'),
  vgg16: vggSpec('vgg16', 'VGG16 (configuration D), Keras layer names; ImageNet weights from the Keras file', 'caffe', KERAS_IMAGENET_SOURCE),
  vgg19: vggSpec('vgg19', 'VGG19 (configuration E), Keras layer names; ImageNet weights from the Keras file', 'caffe', KERAS_IMAGENET_SOURCE),
  'vgg-tiny': vggSpec('vgg-tiny', 'narrow VGG (16-32-64-128 channels, 3 pools) for fast recipes and tests', 'unit', 'none (trained from scratch)'),
  'vgg-tiny-bn': vggSpec('vgg-tiny-bn', 'narrow VGG with batch norm (conv-BN-ReLU, 16-32-64-128 channels, 2 pools: 16×16 map at 64×64) trained from scratch', 'unit', 'none (trained from scratch)'),
  'darknet-tiny': {
    description: 'Darknet reference tiny ImageNet model (tfjs folder given as weights); conv → GAP head',
    defaultInputShape: [224, 224, 3],
    defaultCutLayer: DARKNET_TINY_CUT,
    featureStride: 16,
    featureChannels: 128,
    preprocessing: 'unit',
    weightSource: 'its tfjs model folder, given as --weights (e.g. ../shared/models/darknet-tiny)',
    needsWeights: true,
    build: (opts = {}) => buildDarknetTiny(opts),
  },
} as const satisfies Record<string, BackboneSpec>;

export type BackboneName = keyof typeof BACKBONES;

export const BACKBONE_NAMES = Object.keys(BACKBONES) as BackboneName[];

export function isBackboneName(name: string): name is BackboneName {
  return Object.prototype.hasOwnProperty.call(BACKBONES, name);
}

export function getBackbone(name: string): BackboneSpec {
  if (!isBackboneName(name)) throw new UserError(`backbone '${name}': expected one of ${BACKBONE_NAMES.join(', ')}`);
  return BACKBONES[name];
}

/** Builds a registered backbone by name. */
export async function buildBackbone(name: string, opts: BackboneBuildOptions = {}): Promise<tf.LayersModel> {
  return getBackbone(name).build(opts);
}
