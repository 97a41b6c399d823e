// The evaluation service: classification accuracy and CAM-based weakly-supervised localization of a CAM-ready model
// over a stream of batches, in one forward pass per batch.
//
// Per batch: one forward pass (two images per input with --flip: the image and its mirror, in the same batch) gives
// the logits and the CAMs of [true class, top-1 … top-k] (classActivationMaps, src/cam/class-maps.ts). The maps are
// upsampled bilinearly to the model input size (half-pixel centres, as cv2.resize / MATLAB imresize), turned into
// boxes on that grid, and the boxes are mapped exactly onto the ORIGINAL image (mapBoxToOriginal: the grid box's
// continuous extent, inverted through the data pipeline's resize), where they are scored against the annotated boxes.
// Under `protocol: 'wsolevaluation'` the maps are instead cubic-resized to the input size and scored there against
// resized GT boxes, exactly as clovaai/wsolevaluation does (see wsolevaluation.ts). Only counters,
// one CSV line per image (streamed to disk by the caller) and the confusion matrix are kept: memory does not grow
// with the dataset.
//
// Flip averaging (settings.flip): logits are averaged over the image and its mirror; each CAM is averaged with the
// mirror's CAM flipped back. Ranking uses the averaged logits.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Box, Dataset, ImageRecord, Skip, Split } from '../data/types.js';
import type { CamModel } from '../models/types.js';
import { loadModelRef } from '../models/refs.js';
import { describePreprocessing } from '../data/preprocess-modes.js';
import { loadDataset } from '../data/datasets.js';
import { batches as pipelineBatches } from '../data/pipeline.js';
import type { Geometry } from '../data/geometry.js';
import { defaultCheckpointRoot } from '../paths.js';
import { classActivationMaps, upsampleMaps } from '../cam/class-maps.js';
import { UserError } from '../errors.js';
import { shardItems, shardRange, type ShardSpec } from '../shard/spec.js';
import { writePart } from '../shard/part.js';
import { datasetSelectionFingerprint, idsFingerprint, modelFingerprint, optionsFingerprint } from '../shard/fingerprint.js';
import {
  type BoxSelection,
  type GridMapping,
  type ScoreMap,
  checkBoxConvention,
  mapBoxToOriginal,
  maxIou,
  normalizeScoremap,
  resizeMapping,
} from './boxes.js';
import { ClassificationEvaluator, type ClassificationResult, type ClassificationState, topK } from './classification.js';
import { csvRow } from '../util/csv.js';
import { DEFAULT_EVALUATION_SETTINGS, type EvalBatch, type EvaluationMetrics, type EvaluationSettings, type ImageResult, type LocalizationMetrics } from './types.js';
import { type EvaluationReport, type ModelIdentity, PER_IMAGE_HEADER, markdownSummary, perImageRow, prepareEvaluationFolder, writeEvaluation } from './report.js';
import {
  LocalizationAccuracy,
  type LocalizationAccuracyResult,
  type LocalizationAccuracyState,
  MaxBoxAccEvaluator,
  type MaxBoxAccResult,
  type MaxBoxAccState,
  type RuleNormalization,
  type Thresholding,
  camThresholds,
  centerGaussianMap,
  ruleBoxes,
  ruleIou,
  sweepBoxes,
} from './localization.js';
import { resolveMasksDir, withMasks } from './masks.js';
import { PxapEvaluator, type PxapState, type ScoreGrid, identityMapping, wsolBoxes, wsolResizeBox, wsolScoremap } from './wsolevaluation.js';

function gather(values: Float32Array, n: number, h: number, w: number, k: number, i: number, j: number): ScoreMap {
  const data = new Float32Array(h * w);
  const base = i * h * w * k;
  for (let p = 0; p < h * w; p++) data[p] = values[base + p * k + j];
  return { data, width: w, height: h };
}

interface LocalizationState {
  rule: LocalizationAccuracyState;
  maxBoxAcc: MaxBoxAccState;
  maxBoxAccV2: MaxBoxAccState;
}

/** The counts of an Evaluator (see Evaluator.state). */
export interface EvaluatorState {
  images: number;
  classification: ClassificationState;
  localization: LocalizationState;
  centerBaseline: LocalizationState;
  /** PxAP histograms (CAM, center baseline), when masks were given. */
  pxap?: { cam: PxapState; center: PxapState };
}

/**
 * Accumulates every metric over batches. `labelToModel[c]` is the model class of dataset class c (identity when the
 * model was trained on the dataset).
 */
export class Evaluator {
  readonly settings: EvaluationSettings;
  private readonly cls: ClassificationEvaluator;
  private readonly loc: LocalizationAccuracy;
  private readonly maxBoxAcc: MaxBoxAccEvaluator;
  private readonly maxBoxAccV2: MaxBoxAccEvaluator;
  private readonly centerLoc: LocalizationAccuracy;
  private readonly centerMaxBoxAcc: MaxBoxAccEvaluator;
  private readonly centerMaxBoxAccV2: MaxBoxAccEvaluator;
  private readonly thresholds: number[];
  private readonly center: { largest: Box[][]; all: Box[][]; rule: Box[] };
  private readonly inputSize: [number, number];
  private images = 0;
  private readonly pxap: PxapEvaluator;
  private readonly centerPxap: PxapEvaluator;
  private readonly centerNormalized: ScoreMap;

  constructor(readonly camModel: CamModel, readonly labelToModel: readonly number[], settings: Partial<EvaluationSettings> = {}) {
    this.settings = { ...DEFAULT_EVALUATION_SETTINGS, ...settings };
    const s = this.settings;
    const numClasses = camModel.meta.classNames.length;
    for (const [c, m] of labelToModel.entries()) {
      if (!Number.isInteger(m) || m < 0 || m >= numClasses) throw new UserError(`class map: dataset class ${c} maps to model class ${m}, outside 0..${numClasses - 1}`);
    }
    this.cls = new ClassificationEvaluator(numClasses, s.k);
    this.thresholds = camThresholds(s.sweepStep);
    this.loc = new LocalizationAccuracy(s.iouThreshold, s.k);
    this.centerLoc = new LocalizationAccuracy(s.iouThreshold, s.k);
    const v1 = { thresholds: this.thresholds, thresholding: s.thresholding, iouThresholds: [0.5], boxes: 'largest' as const };
    const v2 = { thresholds: this.thresholds, thresholding: s.thresholding, iouThresholds: [0.3, 0.5, 0.7], boxes: 'all' as const };
    this.maxBoxAcc = new MaxBoxAccEvaluator(v1);
    this.maxBoxAccV2 = new MaxBoxAccEvaluator(v2);
    this.centerMaxBoxAcc = new MaxBoxAccEvaluator(v1);
    this.centerMaxBoxAccV2 = new MaxBoxAccEvaluator(v2);
    this.inputSize = camModel.meta.inputSize;
    const [h, w] = this.inputSize;
    const g = normalizeScoremap(centerGaussianMap(w, h, s.centerSigma));
    this.centerNormalized = g;
    this.pxap = new PxapEvaluator(this.thresholds);
    this.centerPxap = new PxapEvaluator(this.thresholds);
    if (s.protocol === 'wsolevaluation') {
      const swept = wsolBoxes(g, this.thresholds);
      this.center = { largest: swept.largest, all: swept.all, rule: this.wsolRuleBoxes(g) };
    } else {
      this.center = {
        largest: sweepBoxes(g, { thresholds: this.thresholds, boxes: 'largest', thresholding: s.thresholding }),
        all: sweepBoxes(g, { thresholds: this.thresholds, boxes: 'all', thresholding: s.thresholding }),
        rule: ruleBoxes(g, { fraction: s.camThreshold, boxes: s.boxes, normalization: s.normalization }),
      };
    }
  }

  /** The fixed-threshold boxes under the wsolevaluation protocol: its contour boxes at τ = camThreshold of the
   *  normalised map (eval-size pixels). */
  private wsolRuleBoxes(normalized: ScoreGrid): Box[] {
    const b = wsolBoxes(normalized, [this.settings.camThreshold]);
    return this.settings.boxes === 'all' ? b.all[0] : b.largest[0];
  }

  /** Evaluates one batch; returns one result per image (for the per-image CSV). */
  async addBatch(batch: EvalBatch): Promise<ImageResult[]> {
    const { images, records } = batch;
    const n = images.shape[0];
    if (records.length !== n) throw new Error(`addBatch: ${n} images but ${records.length} records`);
    const [H, W] = this.inputSize;
    if (images.shape[1] !== H || images.shape[2] !== W) {
      throw new UserError(`evaluation input: expected images of ${H}×${W} (the model's input size), found ${images.shape[1]}×${images.shape[2]}`);
    }
    const s = this.settings;
    const modelLabels = records.map((r) => {
      const m = this.labelToModel[r.label];
      if (m === undefined) throw new UserError(`image ${r.id}: dataset class ${r.label} has no model class (class map covers ${this.labelToModel.length} classes)`);
      return m;
    });
    const k = this.cls.k;

    // one forward pass: [images; mirrored images] when flipping; classes = [true, top-1..top-k] of the averaged logits
    const input = s.flip ? tf.tidy(() => tf.concat([images, tf.reverse(images, 2)], 0) as tf.Tensor4D) : images;
    let avgLogits: Float32Array | undefined;
    let ranked: number[][] = [];
    const res = classActivationMaps(this.camModel, input, (logits) => {
      const avg = tf.tidy(() => (s.flip ? logits.slice([0, 0], [n, -1]).add(logits.slice([n, 0], [n, -1])).div(2) : logits.clone()));
      avgLogits = avg.dataSync() as Float32Array;
      avg.dispose();
      const C = logits.shape[1];
      ranked = modelLabels.map((_, i) => topK(avgLogits!.subarray(i * C, (i + 1) * C), k));
      const ids = modelLabels.map((m, i) => [m, ...ranked[i]]);
      return s.flip ? [...ids, ...ids] : ids;
    });
    if (input !== images) input.dispose();
    res.logits.dispose();
    const K = k + 1;
    // gapcam: maps upsampled bilinearly on the engine; wsolevaluation: maps at the feature resolution, resized here
    // exactly as inference.py does (cv2.resize INTER_CUBIC in float64, normalize_scoremap)
    const wsol = s.protocol === 'wsolevaluation';
    const up = tf.tidy(() => {
      let maps = res.maps;
      if (s.flip) maps = maps.slice([0, 0, 0, 0], [n, -1, -1, -1]).add(tf.reverse(maps.slice([n, 0, 0, 0], [n, -1, -1, -1]), 2)).div(2) as tf.Tensor4D;
      return wsol ? tf.clone(maps) : upsampleMaps(maps, [H, W]);
    });
    res.maps.dispose();
    const [mh, mw] = [up.shape[1], up.shape[2]];
    const values = (await up.data()) as Float32Array;
    up.dispose();
    const wsolMap = (i: number, j: number): ScoreGrid => wsolScoremap(gather(values, n, mh, mw, K, i, j), W, H);

    const out: ImageResult[] = [];
    for (let i = 0; i < n; i++) {
      const rec = records[i];
      this.cls.accumulateRanked(ranked[i], modelLabels[i]);
      this.images++;
      const mask = batch.masks?.[i];
      if (mask) {
        // PxAP is wsolevaluation's MaskEvaluator whatever the box protocol: the true class's normalised map at the
        // evaluation size against the mask resized to it
        this.pxap.accumulate(wsol ? wsolMap(i, 0) : normalizeScoremap(gather(values, n, H, W, K, i, 0)), mask);
        this.centerPxap.accumulate(this.centerNormalized, mask);
      }
      const result: ImageResult = {
        id: rec.id, label: rec.label, modelClass: modelLabels[i], ranked: ranked[i], correct: ranked[i][0] === modelLabels[i],
        iouTrue: null, iouTop1: null, boxesTrue: [], iouCenter: null,
      };
      if (rec.boxes.length > 0) {
        checkBoxConvention(rec.boxes, 'x0y0x1y1', `GT box of image ${rec.id}`);
        const mapping = batch.mappings?.[i] ?? resizeMapping(rec, W, H);
        if (s.protocol === 'wsolevaluation') {
          this.addWsolImage(result, (j) => wsolMap(i, j), [W, H], modelLabels[i], ranked[i], rec, mapping);
          out.push(result);
          continue;
        }
        const ruleOpts = { fraction: s.camThreshold, boxes: s.boxes, normalization: s.normalization };
        const trueMap = gather(values, n, H, W, K, i, 0);
        const iouCache = new Map<number, number>();
        const iouOf = (c: number): number => {
          let v = iouCache.get(c);
          if (v === undefined) {
            // map 0 is the true class, maps 1..k the ranked classes; other classes have no map (no box: IoU 0)
            const j = c === modelLabels[i] ? 0 : 1 + ranked[i].indexOf(c);
            if (j === 0 && c !== modelLabels[i]) return 0;
            const r = ruleIou(j === 0 ? trueMap : gather(values, n, H, W, K, i, j), rec.boxes, mapping, ruleOpts);
            if (j === 0) result.boxesTrue = r.boxes;
            v = r.iou;
            iouCache.set(c, v);
          }
          return v;
        };
        result.iouTrue = iouOf(modelLabels[i]);
        result.iouTop1 = iouOf(ranked[i][0]);
        this.loc.accumulate({ label: modelLabels[i], ranked: ranked[i], iouOf });
        this.maxBoxAcc.accumulate(trueMap, rec.boxes, mapping);
        this.maxBoxAccV2.accumulate(trueMap, rec.boxes, mapping);
        // center baseline: the same box whatever the class
        const iouCenter = maxIou(this.center.rule.map((b) => mapBoxToOriginal(b, mapping)), rec.boxes);
        result.iouCenter = iouCenter;
        this.centerLoc.accumulate({ label: modelLabels[i], ranked: ranked[i], iouOf: () => iouCenter });
        this.centerMaxBoxAcc.accumulateBoxes(this.center.largest, rec.boxes, mapping);
        this.centerMaxBoxAccV2.accumulateBoxes(this.center.all, rec.boxes, mapping);
      }
      out.push(result);
    }
    return out;
  }

  /** Every count so far. A sharded evaluation writes each shard's state; the merge adds them into one Evaluator and
   *  computes the metrics once (so every accumulator added here must be in state() and merge()). */
  state(): EvaluatorState {
    const loc = (rule: LocalizationAccuracy, a: MaxBoxAccEvaluator, b: MaxBoxAccEvaluator) => ({ rule: rule.state(), maxBoxAcc: a.state(), maxBoxAccV2: b.state() });
    return {
      images: this.images,
      classification: this.cls.state(),
      localization: loc(this.loc, this.maxBoxAcc, this.maxBoxAccV2),
      centerBaseline: loc(this.centerLoc, this.centerMaxBoxAcc, this.centerMaxBoxAccV2),
      ...(this.pxap.images > 0 ? { pxap: { cam: this.pxap.state(), center: this.centerPxap.state() } } : {}),
    };
  }

  /** Adds the counts of another Evaluator with the same settings (another shard's images). */
  merge(state: EvaluatorState): void {
    this.images += state.images;
    this.cls.merge(state.classification);
    this.loc.merge(state.localization.rule);
    this.maxBoxAcc.merge(state.localization.maxBoxAcc);
    this.maxBoxAccV2.merge(state.localization.maxBoxAccV2);
    this.centerLoc.merge(state.centerBaseline.rule);
    this.centerMaxBoxAcc.merge(state.centerBaseline.maxBoxAcc);
    this.centerMaxBoxAccV2.merge(state.centerBaseline.maxBoxAccV2);
    if (state.pxap) {
      this.pxap.merge(state.pxap.cam);
      this.centerPxap.merge(state.pxap.center);
    }
  }

  /** An Evaluator that only merges states and computes (it runs no model). */
  static forMerging(meta: Pick<CamModel['meta'], 'classNames' | 'inputSize'>, labelToModel: readonly number[], settings: Partial<EvaluationSettings>): Evaluator {
    const noModel = { meta, get model(): never { throw new Error('an Evaluator made for merging runs no model'); } };
    return new Evaluator(noModel as unknown as CamModel, labelToModel, settings);
  }

  /** One image under the wsolevaluation protocol: everything at the evaluation size (the input size the image was
   *  resized to), GT boxes resized and truncated as resize_bbox does, boxes from OpenCV-style contours. */
  private addWsolImage(result: ImageResult, mapOf: (j: number) => ScoreGrid, [W, H]: [number, number], label: number, ranked: number[],
    rec: ImageRecord, mapping: GridMapping): void {
    if (mapping.offsetX !== 0 || mapping.offsetY !== 0) throw new Error('the wsolevaluation protocol scores a plain resize of the whole image');
    const gt = rec.boxes.map((b) => wsolResizeBox(b, [rec.width, rec.height], [W, H]));
    const identity = identityMapping(W, H);
    const trueMap = mapOf(0);
    const iouCache = new Map<number, number>();
    const iouOf = (c: number): number => {
      let v = iouCache.get(c);
      if (v === undefined) {
        const j = c === label ? 0 : 1 + ranked.indexOf(c);
        if (j === 0 && c !== label) return 0;
        const boxes = this.wsolRuleBoxes(j === 0 ? trueMap : mapOf(j));
        if (j === 0) result.boxesTrue = boxes.map((b) => mapBoxToOriginal(b, mapping));
        v = maxIou(boxes, gt);
        iouCache.set(c, v);
      }
      return v;
    };
    result.iouTrue = iouOf(label);
    result.iouTop1 = iouOf(ranked[0]);
    this.loc.accumulate({ label, ranked, iouOf });
    const swept = wsolBoxes(trueMap, this.thresholds);
    this.maxBoxAcc.accumulateBoxes(swept.largest, gt, identity);
    this.maxBoxAccV2.accumulateBoxes(swept.all, gt, identity);
    const iouCenter = maxIou(this.center.rule, gt);
    result.iouCenter = iouCenter;
    this.centerLoc.accumulate({ label, ranked, iouOf: () => iouCenter });
    this.centerMaxBoxAcc.accumulateBoxes(this.center.largest, gt, identity);
    this.centerMaxBoxAccV2.accumulateBoxes(this.center.all, gt, identity);
  }

  result(): EvaluationMetrics {
    const loc = (rule: LocalizationAccuracy, a: MaxBoxAccEvaluator, b: MaxBoxAccEvaluator): LocalizationMetrics => {
      const r = rule.compute();
      return { count: r.count, rule: r, maxBoxAcc: a.compute(), maxBoxAccV2: b.compute() };
    };
    return {
      images: this.images,
      classification: this.cls.compute(),
      localization: loc(this.loc, this.maxBoxAcc, this.maxBoxAccV2),
      centerBaseline: loc(this.centerLoc, this.centerMaxBoxAcc, this.centerMaxBoxAccV2),
      ...(this.pxap.images > 0 ? { pxap: { images: this.pxap.images, value: this.pxap.compute(), center: this.centerPxap.compute() } } : {}),
    };
  }
}

/**
 * The model class of every dataset class: identity when the model's class names equal the dataset's; otherwise by
 * name (case-insensitive, after `overrides` "datasetClass=modelClass"); a UserError lists what cannot be mapped.
 */
export function classMapping(datasetClasses: readonly string[], modelClasses: readonly string[], overrides: Record<string, string> = {}): number[] {
  const same = datasetClasses.length === modelClasses.length && datasetClasses.every((c, i) => c === modelClasses[i]);
  if (same && Object.keys(overrides).length === 0) return datasetClasses.map((_, i) => i);
  const index = new Map<string, number>();
  modelClasses.forEach((c, i) => {
    const key = c.toLowerCase();
    if (!index.has(key)) index.set(key, i);
  });
  for (const key of Object.keys(overrides)) {
    if (!datasetClasses.includes(key)) throw new UserError(`--class-map: '${key}' is not a class of the dataset (classes: ${datasetClasses.slice(0, 10).join(', ')}${datasetClasses.length > 10 ? ', …' : ''})`);
  }
  const missing: string[] = [];
  const out = datasetClasses.map((c) => {
    const target = overrides[c] ?? c;
    const m = /^\d+$/.test(target) && !index.has(target.toLowerCase()) ? Number(target) : index.get(target.toLowerCase());
    if (m === undefined || m >= modelClasses.length) missing.push(overrides[c] ? `${c}=${overrides[c]}` : c);
    return m ?? -1;
  });
  if (missing.length > 0) {
    throw new UserError(`class map: dataset classes ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''} have no class of the same name in the model (${modelClasses.length} classes); pass --class-map datasetClass=modelClass,…`);
  }
  return out;
}

/** Parses "a=b,c=d" into { a: 'b', c: 'd' }. */
export function parseClassMap(spec: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!spec) return out;
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) throw new UserError(`--class-map: expected datasetClass=modelClass pairs separated by commas, found '${part}'`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The service: a CAM model + dataset records + a batch source → metrics, per-image CSV, report folder.

/** Turns records into preprocessed input batches (the data module's pipeline in production, synthetic in tests). */
export type BatchSource = (records: readonly ImageRecord[], options: {
  inputSize: [number, number];
  preprocessing: CamModel['meta']['preprocessing'];
  batchSize: number;
  /** Leave out images that fail to decode, pushing each to `skipped`, instead of throwing. */
  skipBadImages?: boolean;
  skipped?: Skip[];
}) => AsyncIterable<EvalBatch>;

export interface RunEvaluationOptions {
  camModel: CamModel;
  model: Omit<ModelIdentity, 'headKind' | 'featureLayer' | 'inputSize' | 'preprocessing' | 'numClasses'>;
  dataset: Dataset;
  split: Split;
  batches: BatchSource;
  outDir: string;
  batchSize?: number;
  /** Evaluate only the first `limit` images of the split (quick checks). */
  limit?: number;
  settings?: Partial<EvaluationSettings>;
  classMap?: Record<string, string>;
  engine?: string;
  onProgress?: (done: number, total: number) => void;
  /** Evaluate only this shard of the selection and write its part under outDir (src/shard/). */
  shard?: ShardSpec;
  /** Leave out images that fail to decode (listed in skipped.txt with those the dataset loader left out). */
  skipBadImages?: boolean;
}

export interface EvaluationRun {
  /** With a shard: the report of that shard's images alone (the merge computes the whole one). */
  report: EvaluationReport;
  markdown: string;
  outDir: string;
  /** The part folder, when a shard was evaluated. */
  part?: string;
}

function datasetFingerprint(records: readonly ImageRecord[]): string {
  const h = createHash('sha256');
  for (const r of records) h.update(`${r.id}\t${r.label}\t${r.width}x${r.height}\t${r.boxes.map((b) => b.join(',')).join(';')}\n`);
  return h.digest('hex');
}

/** Runs the whole evaluation and writes the report folder (atomically). */
export async function runEvaluation(o: RunEvaluationOptions): Promise<EvaluationRun> {
  const started = Date.now();
  const { camModel, dataset } = o;
  const meta = camModel.meta;
  const batchSize = o.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new UserError(`--batch-size: expected a positive integer, found ${batchSize}`);
  let records = dataset.records.filter((r) => r.split === o.split);
  if (records.length === 0) throw new UserError(`dataset ${dataset.name}: the ${o.split} split has no image`);
  if (o.limit !== undefined) {
    if (!Number.isInteger(o.limit) || o.limit < 1) throw new UserError(`--limit: expected a positive integer, found ${o.limit}`);
    records = records.slice(0, o.limit);
  }
  const labelToModel = classMapping(dataset.classNames, meta.classNames, o.classMap);
  const evaluator = new Evaluator(camModel, labelToModel, o.settings);
  // a shard evaluates its range of the selection; the report's dataset identity stays that of the whole selection
  const evaluated = shardItems(records, o.shard);
  const settings = evaluator.settings;

  // a shard writes only its own part folder under --out (the merge writes the evaluation files there later)
  if (!o.shard) prepareEvaluationFolder(o.outDir);
  // The per-image rows are kept in memory (a few hundred bytes per image) and written with the other files at the
  // end, so a failed run leaves no partial file and the previous result intact.
  const csv: string[] = [csvRow(PER_IMAGE_HEADER)];
  const decodeSkips: Skip[] = [];
  let done = 0;
  for await (const batch of o.batches(evaluated, { inputSize: meta.inputSize, preprocessing: meta.preprocessing, batchSize, skipBadImages: o.skipBadImages, skipped: decodeSkips })) {
    try {
      const rows = await evaluator.addBatch(batch);
      for (const r of rows) csv.push(perImageRow(r, dataset.classNames, meta.classNames, settings.iouThreshold));
    } finally {
      batch.images.dispose();
    }
    done += batch.records.length;
    o.onProgress?.(done + decodeSkips.length, evaluated.length);
  }
  const metrics = evaluator.result();
  if (metrics.images !== evaluated.length - decodeSkips.length) throw new Error(`evaluation: ${evaluated.length} records (${decodeSkips.length} skipped) but ${metrics.images} images evaluated`);
  if (metrics.images === 0) throw new UserError(`dataset ${dataset.name}: every image of the ${o.split} split failed to decode (${decodeSkips.length} skipped; first: ${decodeSkips[0]?.reason})`);
  const skipped = [...(dataset.skipped ?? []), ...decodeSkips];
  const context: EvaluationContext = {
    tool: 'gapcam',
    kind: 'evaluation',
    createdAt: new Date().toISOString(),
    seconds: (Date.now() - started) / 1000,
    engine: o.engine ?? tf.getBackend(),
    model: {
      ...o.model,
      headKind: meta.headKind,
      featureLayer: meta.featureLayer,
      inputSize: meta.inputSize,
      preprocessing: describePreprocessing(meta.preprocessing),
      numClasses: meta.classNames.length,
      backbone: o.model.backbone ?? meta.backbone,
      recipe: o.model.recipe ?? meta.recipe,
    },
    dataset: {
      name: dataset.name,
      root: dataset.root,
      split: o.split,
      images: records.length,
      classNames: dataset.classNames,
      fingerprint: datasetFingerprint(records),
    },
    settings: {
      ...settings, batchSize, classMap: labelToModel,
      classMapNames: Object.fromEntries(dataset.classNames.map((c, i) => [c, meta.classNames[labelToModel[i]]])),
      ...(o.limit !== undefined ? { limit: o.limit } : {}) },
  };
  const report = withMetrics(context, metrics);
  const markdown = markdownSummary(report);
  // confusion rows/columns of mapped classes read "datasetClass (modelClass)" when the names differ
  const names = meta.classNames.slice();
  dataset.classNames.forEach((c, i) => {
    const m = labelToModel[i];
    if (names[m] !== c) names[m] = `${c} (${meta.classNames[m]})`;
  });
  if (o.shard) {
    const data: EvaluationPartData = { context, confusionNames: names, state: evaluator.state(), skipped };
    const part = await writeEvaluationPart(o, o.shard, data, csv.join(''), records, evaluated);
    return { report, markdown, outDir: o.outDir, part };
  }
  await writeEvaluation(o.outDir, report, csv.join(''), names, metrics.classification.confusion, skipped);
  return { report, markdown, outDir: o.outDir };
}

/** An evaluation report without its metrics: what every shard knows before its counts are merged. */
export type EvaluationContext = Omit<EvaluationReport, 'metrics'>;

/** The report of `metrics` (a 1000-class confusion matrix is a million numbers: confusion.csv holds it). */
export function withMetrics(context: EvaluationContext, metrics: EvaluationMetrics): EvaluationReport {
  return {
    ...context,
    metrics: {
      ...metrics,
      classification: context.model.numClasses > 50 ? { ...metrics.classification, confusion: [] } : metrics.classification,
    },
  };
}

/** What a shard of an evaluation writes beside its per-image.csv: the report's context, the confusion names and the
 *  Evaluator's counts (src/eval/merge.ts adds them up). */
export interface EvaluationPartData {
  context: EvaluationContext;
  confusionNames: string[];
  state: EvaluatorState;
  /** Images left out (--skip-bad-images) while loading the dataset (the same for every shard) and while decoding
   *  this shard's images. */
  skipped: { file: string; reason: string }[];
}

export const EVALUATION_PART_FILE = 'evaluation-part.json';

async function writeEvaluationPart(o: RunEvaluationOptions, spec: ShardSpec, data: EvaluationPartData, perImageCsv: string, records: readonly ImageRecord[], evaluated: readonly ImageRecord[]): Promise<string> {
  const { start, end } = shardRange(records.length, spec);
  const { createdAt: _c, seconds: _s, engine: _e, ...identity } = data.context;
  const { batchSize: _b, ...options } = identity.settings;
  const ids = evaluated.map((r) => r.id);
  return writePart(o.outDir, spec, {
    kind: 'evaluation',
    images: { total: records.length, start, end, count: ids.length, firstId: ids[0] ?? null, lastId: ids[ids.length - 1] ?? null, idsSha256: idsFingerprint(ids) },
    fingerprint: {
      model: o.model.source && fs.existsSync(o.model.source) ? modelFingerprint(o.model.source) : optionsFingerprint({ model: o.model.source }),
      dataset: datasetSelectionFingerprint(o.dataset.root, o.dataset.classNames, records),
      options: optionsFingerprint({ kind: 'evaluation', split: identity.dataset.split, model: { ...identity.model, ref: undefined, source: undefined }, ...options }),
    },
    settings: { ...identity.settings },
  }, async (tmp) => {
    await fs.promises.writeFile(path.join(tmp, 'per-image.csv'), perImageCsv);
    await fs.promises.writeFile(path.join(tmp, EVALUATION_PART_FILE), JSON.stringify(data) + '\n');
    return ['per-image.csv', EVALUATION_PART_FILE];
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The top-level service behind `gapcam evaluate`: model reference + dataset name → report folder.

/** GridMapping of a data-pipeline geometry (input = a·original + b per axis, edge coordinates). */
export function gridMappingFromGeometry(g: Geometry): GridMapping {
  if (g.ax <= 0 || g.ay <= 0) throw new Error('evaluation: a mirrored input geometry cannot be scored (flip averaging is done on the maps)');
  return { scaleX: 1 / g.ax, scaleY: 1 / g.ay, offsetX: -g.bx / g.ax, offsetY: -g.by / g.ay, width: g.srcWidth, height: g.srcHeight };
}

/** The data pipeline as a batch source: decode, resize exactly to the input size (no crop: the whole image is
 *  scored, as wsolevaluation does), preprocess with the model's mode, keep each image's geometry. The resize runs
 *  inside the decode (sharp: JPEG shrink-on-load, PNG read sequentially; data/prepare.ts), so a huge photo never has
 *  a full-size copy in memory, and its boxes map back exactly (test/eval/large-images.test.ts). */
export const pipelineBatchSource: BatchSource = (records, { inputSize, preprocessing, batchSize, skipBadImages, skipped }) => {
  const stream = pipelineBatches([...records], {
    batchSize,
    transforms: [{ op: 'resize', size: inputSize, mode: 'exact' }],
    preprocess: preprocessing,
    skipBadImages,
  });
  return (async function* () {
    let reported = 0;
    const report = () => { for (; reported < stream.stats.skipped.length; reported++) skipped?.push(stream.stats.skipped[reported]); };
    for await (const b of stream) {
      report();
      yield { images: b.images, records: b.records, mappings: b.geometry.map(gridMappingFromGeometry) };
    }
    report();
  })();
};

export interface EvaluateOptions {
  /** Model folder, checkpoint run (best/, else last/), run name under the checkpoint root, or URL. */
  checkpoint: string;
  /** Dataset name, folder or CSV (or a dataset already loaded); default: the dataset (and data root) recorded in the
   *  training run's run.json. */
  dataset?: string | Dataset;
  split?: Split;
  /** Folder of ground-truth masks for PxAP (default: <dataset root>/masks when it exists); see masks.ts. */
  masks?: string;
  dataRoot?: string;
  checkpointRoot?: string;
  /** Output folder; default: <run>/eval-<dataset>-<split> for a checkpoint run, else
   *  <checkpointRoot>/evaluations/<model>-<dataset>-<split>. */
  out?: string;
  batchSize?: number;
  limit?: number;
  settings?: Partial<EvaluationSettings>;
  /** "datasetClass=modelClass,…" for models trained on other classes. */
  classMap?: string;
  /** Leave out missing, empty and undecodable images (listed in skipped.txt) instead of stopping. */
  skipBadImages?: boolean;
  onProgress?: (done: number, total: number) => void;
  shard?: ShardSpec;
}

/** The dataset a training run was trained on (run.json: spec and data root; older runs: recipe.json's dataset). */
export function runDataset(modelSource: string, ref: string): { spec: string; dataRoot?: string } {
  for (const dir of [path.dirname(modelSource), modelSource]) {
    const runFile = path.join(dir, 'run.json');
    if (!fs.existsSync(runFile)) continue;
    let run: { dataset?: { spec?: string; dataRoot?: string } };
    let recipe: { data?: { dataset?: string } } = {};
    try {
      run = JSON.parse(fs.readFileSync(runFile, 'utf8'));
      if (fs.existsSync(path.join(dir, 'recipe.json'))) recipe = JSON.parse(fs.readFileSync(path.join(dir, 'recipe.json'), 'utf8'));
    } catch (err) {
      throw new UserError(`${runFile}: expected the run's JSON facts, found invalid JSON (${(err as Error).message.split('\n')[0]})`);
    }
    const spec = run.dataset?.spec ?? recipe.data?.dataset;
    if (spec) return { spec, dataRoot: run.dataset?.dataRoot };
  }
  throw new UserError(`evaluate: no --dataset given, and '${ref}' is not a training run that records its dataset (no run.json beside ${modelSource}); pass --dataset`);
}

function sha256File(file: string): string | undefined {
  try {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
}

export async function evaluate(o: EvaluateOptions): Promise<EvaluationRun> {
  const split = o.split ?? 'test';
  const ref = await loadModelRef(o.checkpoint, { checkpointRoot: o.checkpointRoot });
  if (!ref.meta) {
    ref.model.dispose();
    throw new UserError(`model '${o.checkpoint}' is not CAM-ready: expected a GAP → Dense or class-conv → GAP head (or a meta.json); convert it with the GAP surgery first`);
  }
  const camModel: CamModel = { model: ref.model, meta: ref.meta };
  try {
    let dataset: Dataset;
    if (typeof o.dataset === 'object') dataset = o.dataset;
    else {
      const from = o.dataset === undefined ? runDataset(ref.source, o.checkpoint) : { spec: o.dataset, dataRoot: o.dataRoot };
      dataset = await loadDataset(from.spec, { dataRoot: from.dataRoot, minClasses: 1, skipBadImages: o.skipBadImages });
    }
    const masks = resolveMasksDir(dataset, o.masks);
    const base = path.basename(ref.source.replace(/[\\/]+$/, '')) || 'model';
    const outDir = path.resolve(o.out ?? (ref.kind === 'checkpoint'
      ? path.join(path.dirname(ref.source), `eval-${dataset.name}-${split}`)
      : path.join(o.checkpointRoot ?? defaultCheckpointRoot(), 'evaluations', `${base}-${dataset.name}-${split}`)));
    return await runEvaluation({
      camModel,
      model: {
        ref: o.checkpoint,
        source: ref.source,
        name: ref.kind === 'checkpoint' ? path.basename(path.dirname(ref.source)) : base,
        backbone: ref.backbone,
        modelJsonSha256: ref.kind === 'url' || ref.kind === 'backbone' ? undefined : sha256File(path.join(ref.source, 'model.json')),
      },
      dataset,
      split,
      batches: masks ? withMasks(pipelineBatchSource, dataset, masks) : pipelineBatchSource,
      outDir,
      batchSize: o.batchSize,
      limit: o.limit,
      settings: o.settings,
      classMap: parseClassMap(o.classMap),
      onProgress: o.onProgress,
      shard: o.shard,
      skipBadImages: o.skipBadImages,
    });
  } finally {
    camModel.model.dispose();
  }
}
