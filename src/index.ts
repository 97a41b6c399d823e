// The library API: typed exports, grown as modules land.
export { startEngine, describeEngine, currentEngine, type EngineInfo, type EngineName } from './engine.js';
export { UserError } from './errors.js';
export {
  loadLayersModelFromDir, loadLayersModelFromUrl, loadLayersModel, saveLayersModelToDir, loadCamModel, saveCamModel,
  loadModelRef, readMeta, validateMeta, type LoadedModelRef,
} from './models/io.js';
export { asCamModel, detectCamHead } from './models/head.js';
export type { CamModel, ModelMeta, HeadKind } from './models/types.js';
export { classActivationMaps, topK, topKSelection, upsampleMaps, normalizeMaps, normalizeArray, normalizedInputSizeMaps, type ClassSelection, type ClassActivationResult, type UpsampleOptions } from './cam/class-maps.js';
export { iou, maxIou, boxArea, checkBoxConvention, normalizeScoremap, connectedComponents, maskBoxes, mapBoxToOriginal, resizeMapping, type ScoreMap, type GridMapping, type BoxSelection } from './eval/boxes.js';
export { ruleBoxes, ruleMask, ruleIou, sweepBoxes, sweepMask, camThresholds, centerGaussianMap, MaxBoxAccEvaluator, maxBoxAccEvaluator, maxBoxAccV2Evaluator, LocalizationAccuracy, type RuleOptions, type SweepOptions, type MaxBoxAccResult, type LocalizationAccuracyResult } from './eval/localization.js';
export { ClassificationEvaluator, topK as rankTopK, confusionCsv, type ClassificationResult } from './eval/classification.js';
export { createCamMethod, camMethods, METHOD_NAMES, isMethodName, type MethodName } from './cam/registry.js';
export { CamMethod, type CamTarget, type CamResult, type MethodOptions, type MethodFlags, type CamContext } from './cam/methods/base.js';
export { splitAtLayer, lastSpatialLayer, spatialLayers, type SplitModel } from './cam/split.js';
export { BACKBONES, BACKBONE_NAMES, buildBackbone, getBackbone, isBackboneName, type BackboneName, type BackboneSpec, type BackboneBuildOptions } from './models/registry.js';
export { buildVgg, VGG_ARCHS, type VggName, type VggOptions } from './models/backbones/vgg.js';
export { toGap, truncateModel, GAP_LAYER_NAMES, type ToGapOptions } from './models/surgery.js';
export { readKerasH5, loadKerasWeights, applyKerasWeights, saveKerasH5, type KerasH5Weights, type LoadKerasWeightsOptions, type LoadKerasWeightsReport } from './models/keras-h5.js';
export { fetchImagenetWeights, fetchPretrained, IMAGENET_WEIGHTS, KERAS_WEIGHTS_BASE_URL, type PretrainedOptions } from './models/pretrained.js';
