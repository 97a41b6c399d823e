// Static copies of the option choices and defaults that command builders show in --help. The modules that own them
// (cam/registry, features/*, models/service) import TensorFlow.js at load time, and `gapcam --help` must not pay for
// that; test/cli/commands.test.ts checks that every copy here equals its owner's value.

export const METHOD_NAMES = ['cam', 'gradcam', 'gradcam++', 'xgradcam', 'layercam', 'scorecam'] as const;
/** One line per method for `gapcam cam --help`. */
export const METHOD_DESCRIPTIONS: Record<(typeof METHOD_NAMES)[number], string> = {
  'cam': 'CAM: GAP classifier weights × the last feature map (exact, no gradients; CAM-ready models)',
  'gradcam': 'Grad-CAM: channel weights = spatial mean of the class-score gradient',
  'gradcam++': 'Grad-CAM++: positive gradients weighted by second/third-order terms',
  'xgradcam': 'XGrad-CAM: gradients averaged with activation-proportional weights',
  'layercam': 'Layer-CAM: activations weighted position by position by the positive gradient (good on early layers)',
  'scorecam': 'Score-CAM: channel weights = class probability of the input masked by each channel (forward passes only)',
};
export const SPLIT_CHOICES = ['all', 'train', 'test', 'val'] as const;
export const CROP_MODES = ['full', 'cam', 'gt-box'] as const;
export const FEATURES_DEFAULT_BATCH_SIZE = 32;
export { DEFAULT_CAM_BOX_FRACTION as FEATURES_DEFAULT_CAM_THRESHOLD } from '../eval/localization.js';
export const EXPORT_FORMATS = ['tfjs', 'keras-h5'] as const;
