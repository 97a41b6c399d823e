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
export { readKerasH5, loadKerasWeights, applyKerasWeights, saveKerasH5, kerasModelConfig, type SaveKerasH5Options, type KerasH5Weights, type LoadKerasWeightsOptions, type LoadKerasWeightsReport } from './models/keras-h5.js';
export { fetchImagenetWeights, fetchPretrained, IMAGENET_WEIGHTS, KERAS_WEIGHTS_BASE_URL, type PretrainedOptions } from './models/pretrained.js';
export type { Box, Split, ImageRecord, Dataset, PreprocessMode, Skip } from './data/types.js';
export { decodeImage, decodeWith, imageSize, normalizedSharp, encodePng, type DecodedImage, type DecodeOptions } from './data/image.js';
export { preprocessPixels, preprocessTensor, deprocessPixels, parsePreprocessMode, PREPROCESS_MODES, PREPROCESS_SPECS } from './data/preprocess.js';
export { loadDataset, datasetNames, isDatasetName, listDatasets, namedDatasets, resolveDataRoot, DEFAULT_DATASET, type DatasetName, type LoadDatasetOptions, type NamedDataset, type DatasetListing } from './data/datasets.js';
export { split, splitCounts, assignSeededSplit } from './data/split.js';
export { layouts, layoutNames, detectLayout, type LayoutName, type LayoutAdapter, type LayoutOptions } from './data/adapters/index.js';
export { ensureEmbeddedDataset, buildEmbeddedDataset, embeddedDatasetPresent, embeddedDatasetDir, DEFAULT_EMBEDDED_PARAMS, type EmbeddedParams } from './data/embedded.js';
export { batches, prepareImage, epochOrder, describeSkips, type Batch, type BatchStream, type PipelineOptions, type PipelineStats, type PrepareOptions, type PreparedImage } from './data/pipeline.js';
export { parseTransform, transformNames, recipeOutputSize, type Transform, type TransformName } from './data/transforms.js';
export { boxToInput, boxToOriginal, clipBox, inputRegionInOriginal, identityGeometry, type Geometry } from './data/geometry.js';
export { checkDataset, type DatasetCheckReport, type DatasetProblem } from './data/check.js';
export { summarizeModel, describeModel, formatModelSummary, runSurgery, exportModel, parseClasses, type ModelSummary } from './models/service.js';
export { Evaluator, runEvaluation, evaluate, classMapping, parseClassMap, pipelineBatchSource, gridMappingFromGeometry, DEFAULT_EVALUATION_SETTINGS, type EvaluationSettings, type EvalBatch, type BatchSource, type ImageResult, type EvaluationMetrics, type LocalizationMetrics, type EvaluateOptions, type RunEvaluationOptions, type EvaluationRun } from './eval/evaluate.js';
export { markdownSummary, confusionCsvCompact, type EvaluationReport, type ModelIdentity, type DatasetIdentity } from './eval/report.js';
export { extractFeatures, resolveFeatureLayer, FeatureExtractor, camBoxes, CROP_MODES, type CropMode, type ExtractOptions, type ExtractResult, type FeatureModel } from './features/extract.js';
export { runFeatures, ensureFeatures, loadFeatureModel, type RunFeaturesOptions, type FeatureJob, type FeatureJobResult } from './features/service.js';
export { readFeatureSet, writeFeatureSet, subsetFeatures, type FeatureSet, type FeaturesMeta, type FeatureIndexRow } from './features/store.js';
export { solveBinarySvm, svmObjectives, type DualCdOptions, type DualCdResult } from './svm/solver.js';
export { fitLinearSvm, predictLinearSvm, trainOneVsRest, type LinearSvmModel, type LinearSvmOptions } from './svm/linear-svm.js';
export { crossValidateC, selectCAndFit, stratifiedFolds, DEFAULT_C_GRID, type CvResult } from './svm/cv.js';
export { runSvm, trainAndTestSvm, loadSvmModel, type SvmResult, type SvmSettings } from './svm/service.js';
export { runTransfer, type TransferResult, type RunTransferOptions } from './transfer/run.js';
export { loadExperiment, parseExperiment, type Experiment } from './transfer/experiment.js';
