// gapcam's library API: what a program needs to explain, train and evaluate CAM models, grouped by task. Everything
// else (fused training step, oneDNN kernel routing, wasm kernel registration, helpers) is internal; it stays
// importable, without any promise of stability, from `gapcam/internal/<path>` (e.g. `gapcam/internal/perf/kernels`).
//
// The short path (README, "Use as a library"):
//   import { loadCam } from 'gapcam';
//   const explainer = await loadCam('checkpoints/my-run');   // starts the best engine when none runs
//   const e = await explainer.explain('photo.jpg');           // class, CAM at input and original size, box

// ---- Engine: native TensorFlow when it loads, else wasm, else pure JS (startEngine picks; loadCam calls it) ----
export { startEngine, ensureEngine, currentEngine, describeEngine, ENGINE_NAMES, type EngineInfo, type EngineName, type EngineRequest } from './engine.js';
export { UserError } from './errors.js';

// ---- Explain an image in three lines ----
export { loadCam, CamExplainer, type Explanation, type ExplainOptions, type LoadCamOptions, type ClassScore } from './cam/explain.js';
export { camBox, DEFAULT_CAM_BOX_FRACTION } from './cam/box.js';

// ---- Models: load and save, backbones, FC→GAP surgery, Keras weights ----
export { loadModelRef, type LoadedModelRef, type LoadModelRefOptions } from './models/refs.js';
export { loadCamModel, saveCamModel, readMeta } from './models/meta.js';
export { loadLayersModel, saveLayersModelToDir } from './models/layers-io.js';
export { asCamModel, detectCamHead } from './models/head.js';
export type { CamModel, ModelMeta, HeadKind } from './models/types.js';
export { BACKBONE_NAMES, buildBackbone, getBackbone, isBackboneName, type BackboneName, type BackboneSpec, type BackboneBuildOptions } from './models/registry.js';
export { buildVgg, VGG_ARCHS, type VggName, type VggOptions } from './models/backbones/vgg.js';
export { toGap, truncateModel, GAP_LAYER_NAMES, type ToGapOptions } from './models/surgery.js';
export { summarizeModel, formatModelSummary, runSurgery, exportModel, type ModelSummary } from './models/service.js';
export { quantizeWeights, WEIGHT_QUANTIZATIONS, type WeightQuantization } from './models/quantize.js';
export { exportWeb, formatWebExport, type WebExportRequest, type WebExportResult } from './web/export.js';
export { loadKerasModelH5 } from './models/keras-model.js';
export { loadKerasWeights, saveKerasH5, type SaveKerasH5Options, type LoadKerasWeightsOptions, type LoadKerasWeightsReport } from './models/keras-h5.js';
export { fetchPretrained, fetchImagenetWeights, IMAGENET_WEIGHTS, type PretrainedOptions } from './models/pretrained.js';

// ---- CAM: exact CAM and the Grad-CAM family, maps, the `gapcam cam` service ----
export { createCamMethod, camMethods, METHOD_NAMES, isMethodName, type MethodName } from './cam/registry.js';
export { CamMethod, type CamTarget, type CamResult, type MethodOptions } from './cam/methods/base.js';
export { classActivationMaps, topKSelection, upsampleMaps, normalizeMaps, normalizeArray, resizeBilinearArray, normalizedInputSizeMaps, type ClassSelection, type ClassActivationResult, type UpsampleOptions } from './cam/class-maps.js';
export { runCam, type CamRunOptions, type CamRunSummary, type CamImageResult, type NpyMode } from './cam/service.js';
export { computeMaps, mapOf, type ComputedMaps, type OneMap } from './cam/computed-maps.js';
export { FaithfulnessAccumulator, type FaithfulnessResult, type FaithfulnessOptions } from './cam/faithfulness.js';

// ---- Pictures: overlays, strips, galleries ----
export { renderOverlay, renderStrip, blend, drawBoxes, mapToSize, CAM_BOX_COLOR, GT_BOX_COLOR, type OverlayOptions, type DrawnBox, type StripPanel, type StripOptions, type Rgb } from './render/overlay.js';
export { applyColormap, COLORMAP_NAMES, type ColormapName } from './render/colormap.js';
export { writeGallery, galleryHtml, type GalleryCard, type GalleryInfo } from './render/gallery.js';

// ---- Data: datasets in any supported layout, images, preprocessing, the batch pipeline ----
export type { Box, Split, ImageRecord, Dataset, PreprocessMode } from './data/types.js';
export { decodeImage, imageSize, type DecodedImage } from './data/image.js';
export { preprocessPixels, preprocessTensor, PREPROCESS_MODES } from './data/preprocess.js';
export { resizeRgbLanczos3 } from './data/resize.js';
export { loadDataset, datasetNames, listDatasets, resolveDataRoot, type DatasetName, type LoadDatasetOptions, type DatasetListing } from './data/datasets.js';
export { split, splitCounts } from './data/split.js';
export { layoutNames, detectLayout, type LayoutName } from './data/adapters/index.js';
export { ensureEmbeddedDataset } from './data/embedded.js';
export { batches, prepareImage, type Batch, type BatchStream, type PipelineOptions, type PreparedImage } from './data/pipeline.js';
export { checkDataset, type DatasetCheckReport } from './data/check.js';

// ---- Evaluation: boxes, the paper's rule, MaxBoxAcc/V2, classification, the `gapcam evaluate` service ----
export { iou, maxIou, boxArea, resizeMapping, mapBoxToOriginal, type ScoreMap, type GridMapping } from './eval/boxes.js';
export { ruleBoxes, ruleIou, sweepBoxes, centerGaussianMap, MaxBoxAccEvaluator, maxBoxAccEvaluator, maxBoxAccV2Evaluator, LocalizationAccuracy, type RuleOptions, type MaxBoxAccResult, type LocalizationAccuracyResult } from './eval/localization.js';
export { ClassificationEvaluator, type ClassificationResult } from './eval/classification.js';
export { Evaluator, runEvaluation, evaluate, type EvaluateOptions, type RunEvaluationOptions, type EvaluationRun } from './eval/evaluate.js';
export { DEFAULT_EVALUATION_SETTINGS, type EvaluationSettings, type EvaluationMetrics, type LocalizationMetrics } from './eval/types.js';

// ---- Training: recipes, the run service, the loop, checkpoints, metrics and TensorBoard ----
export { loadRecipe, parseRecipe, applyOverrides, listRecipes, type RecipeOverrides, type RecipeListing } from './recipes/loader.js';
export { RecipeSchema, type Recipe, type RecipeInput } from './recipes/schema.js';
export { runTraining, trainAndEvaluate, buildRecipeModel, type TrainRunOptions, type TrainRunResult, type TrainAndEvaluateResult } from './train/run.js';
export { train, TrainingDivergedError, type TrainOptions, type TrainResult } from './train/trainer.js';
export { memoryData, type TrainData, type LabelledBatch } from './train/data.js';
export { loadLastCheckpoint, type Checkpoint } from './train/checkpoint.js';
export { readMetrics, type MetricsRow, type StepRow, type EpochRow, type MetricsSink } from './train/metrics.js';
export { TensorBoardSink, type TensorBoardSinkOptions } from './train/tensorboard.js';
export { EventFileWriter, histogramOf, type SummaryValue } from './util/event-file.js';

// ---- GAP features, the linear SVM, transfer experiments ----
export { extractFeatures, FeatureExtractor, CROP_MODES, type CropMode, type ExtractOptions, type ExtractResult, type FeatureModel } from './features/extract.js';
export { runFeatures, loadFeatureModel, type RunFeaturesOptions } from './features/service.js';
export { readFeatureSet, writeFeatureSet, type FeatureSet, type FeaturesMeta } from './features/store.js';
export { fitLinearSvm, predictLinearSvm, trainOneVsRest, type LinearSvmModel, type LinearSvmOptions } from './svm/linear-svm.js';
export { crossValidateC, selectCAndFit, DEFAULT_C_GRID, type CvResult } from './svm/cv.js';
export { runSvm, loadSvmModel, type SvmResult } from './svm/service.js';
export { runTransfer, type RunTransferOptions } from './transfer/run.js';
export type { TransferResult } from './transfer/types.js';
export { loadExperiment, type Experiment } from './transfer/experiment.js';
