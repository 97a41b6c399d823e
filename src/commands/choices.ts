// Static copies of the option choices and defaults that command builders show in --help. The modules that own them
// (cam/registry, features/*, models/service) import TensorFlow.js at load time, and `gapcam --help` must not pay for
// that; test/cli/choices.test.ts checks that every copy here equals its owner's value.

export const METHOD_NAMES = ['cam', 'gradcam', 'gradcam++', 'xgradcam', 'layercam', 'scorecam'] as const;
export const SPLIT_CHOICES = ['all', 'train', 'test', 'val'] as const;
export const CROP_MODES = ['full', 'cam', 'gt-box'] as const;
export const FEATURES_DEFAULT_BATCH_SIZE = 32;
export const FEATURES_DEFAULT_CAM_THRESHOLD = 0.2;
export const EXPORT_FORMATS = ['tfjs', 'keras-h5'] as const;
