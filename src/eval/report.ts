// What an evaluation writes: evaluation.json (every number, the settings, model and dataset identity), a short
// Markdown table (printed and saved as evaluation.md), per-image.csv and confusion.csv, written into the --out folder
// one file at a time, each atomically (src/util/out-folder.ts); nothing else in the folder is touched.
import fs from 'node:fs';
import path from 'node:path';
import type { Box } from '../data/types.js';
import { jsonHas, prepareOutFolder, writeOwnFiles, type OutputOwner } from '../util/out-folder.js';
import { csvRow } from '../util/csv.js';
import { PROTOCOL_DESCRIPTIONS } from './wsolevaluation.js';
import type { EvaluationMetrics, EvaluationSettings, ImageResult, LocalizationMetrics } from './types.js';

export interface ModelIdentity {
  /** What the user named (folder, run, URL). */
  ref: string;
  /** Where it was read from. */
  source: string;
  name: string;
  backbone?: string;
  recipe?: string;
  headKind: string;
  featureLayer: string;
  inputSize: [number, number];
  preprocessing: string;
  numClasses: number;
  /** sha256 of model.json (when read from a folder). */
  modelJsonSha256?: string;
}

export interface DatasetIdentity {
  name: string;
  root: string;
  split: string;
  images: number;
  classNames: string[];
  /** sha256 over the evaluated records (id, label, size, boxes), in order. */
  fingerprint: string;
}

export interface EvaluationReport {
  tool: 'gapcam';
  kind: 'evaluation';
  createdAt: string;
  seconds: number;
  engine: string;
  model: ModelIdentity;
  dataset: DatasetIdentity;
  settings: EvaluationSettings & {
    batchSize: number;
    /** Model class id of every dataset class, and the same as names (dataset class → model class). */
    classMap: number[];
    classMapNames: Record<string, string>;
    limit?: number;
  };
  metrics: EvaluationMetrics;
}

export const PER_IMAGE_HEADER = ['id', 'true_class', 'correct', 'top_classes', 'iou_true', 'iou_top1', 'hit', 'boxes_true', 'iou_center'];

const boxText = (boxes: Box[]): string => boxes.map((b) => b.map((v) => Number(v.toFixed(2))).join(' ')).join(';');
const num = (v: number | null): string => (v === null ? '' : v.toFixed(4));

/** One per-image CSV line: id, true class, correct, top-k classes (names, ';'-separated), IoUs at the fixed rule,
 *  hit (IoU of the true class ≥ δ), the true class's boxes in original pixels, the center baseline's IoU. */
export function perImageRow(r: ImageResult, datasetClasses: readonly string[], modelClasses: readonly string[], iouThreshold: number): string {
  return csvRow([
    r.id,
    datasetClasses[r.label] ?? String(r.label),
    r.correct ? 1 : 0,
    r.ranked.map((c) => modelClasses[c] ?? String(c)).join(';'),
    num(r.iouTrue),
    num(r.iouTop1),
    r.iouTrue === null ? '' : r.iouTrue >= iouThreshold ? 1 : 0,
    boxText(r.boxesTrue),
    num(r.iouCenter),
  ]);
}

/** The confusion matrix as CSV (rows: true class, columns: predicted class). When the model has more than `full`
 *  classes, only the classes that occur are kept: rows for classes with images, columns for classes that are true or
 *  predicted at least once (a 1000-class model evaluated on 2 classes gives a 2-row table). */
export function confusionCsvCompact(confusion: readonly (readonly number[])[], names: readonly string[], full = 50): string {
  const n = confusion.length;
  let rows = Array.from({ length: n }, (_, i) => i);
  let cols = rows;
  if (n > full) {
    rows = rows.filter((c) => confusion[c].some((v) => v > 0));
    cols = cols.filter((c) => rows.includes(c) || confusion.some((row) => row[c] > 0));
  }
  let out = csvRow(['true\\predicted', ...cols.map((c) => names[c] ?? String(c))]);
  for (const t of rows) out += csvRow([names[t] ?? String(t), ...cols.map((p) => confusion[t][p])]);
  return out;
}

const f1 = (v: number): string => v.toFixed(2);

/** The short Markdown summary: CAM vs center baseline, side by side. */
export function markdownSummary(report: EvaluationReport): string {
  const { metrics: m, settings: s } = report;
  const c = m.classification;
  const best = (r: LocalizationMetrics['maxBoxAcc'], d: number): string => `${f1(r.perIou[d].maxBoxAcc)} (τ=${r.perIou[d].bestThreshold.toFixed(2)})`;
  const protocol = s.protocol ?? 'gapcam';
  const wsol = protocol === 'wsolevaluation';
  const thr = wsol ? `τ = ${s.camThreshold}` : s.normalization === 'max' ? `map ≥ ${s.camThreshold}·max` : `min-max map ≥ ${s.camThreshold}`;
  const rule = `IoU ≥ ${s.iouThreshold}, ${thr}, ${s.boxes === 'largest' ? `largest ${wsol ? 'contour' : 'component'}` : `all ${wsol ? 'contours' : 'components'}`}`;
  const locRow = (label: string, get: (l: LocalizationMetrics) => string): string => `| ${label} | ${protocol} | ${get(m.localization)} | ${get(m.centerBaseline)} |\n`;
  let md = `## ${report.model.name} on ${report.dataset.name}/${report.dataset.split}\n\n`;
  md += `${m.images} images (${m.localization.count} with boxes), ${report.model.numClasses} model classes, input ${report.model.inputSize[0]}×${report.model.inputSize[1]}${s.flip ? ', flip-averaged' : ''}.\n\n`;
  md += `Localization protocol: ${PROTOCOL_DESCRIPTIONS[protocol]}.\n\n`;
  md += '| metric | protocol | CAM | center baseline |\n|---|---|---:|---:|\n';
  md += `| top-1 accuracy | classification | ${f1(c.top1)} | |\n`;
  md += `| top-${c.k} accuracy | classification | ${f1(c.topK)} | |\n`;
  md += `| mean per-class accuracy | classification | ${f1(c.meanPerClass)} | |\n`;
  md += locRow(`top-1 loc (${rule})`, (l) => f1(l.rule.top1Loc));
  md += locRow(`top-${c.k} loc`, (l) => f1(l.rule.top5Loc));
  md += locRow('GT-known loc', (l) => f1(l.rule.gtKnownLoc));
  md += locRow(`MaxBoxAcc (IoU 0.5, largest ${wsol ? 'contour' : 'component'}, best τ)`, (l) => best(l.maxBoxAcc, 0));
  md += locRow(`MaxBoxAccV2 (mean of IoU 0.3/0.5/0.7, all ${wsol ? 'contours' : 'components'})`, (l) => f1(l.maxBoxAccV2.mean));
  for (let d = 0; d < m.localization.maxBoxAccV2.perIou.length; d++) {
    md += locRow(`MaxBoxAccV2 at IoU ${m.localization.maxBoxAccV2.perIou[d].iouThreshold}`, (l) => best(l.maxBoxAccV2, d));
  }
  if (m.pxap !== undefined) md += `| PxAP (${m.pxap.images} masks) | wsolevaluation | ${f1(m.pxap.value)} | ${f1(m.pxap.center)} |\n`;
  md += `\nτ grid: step ${s.sweepStep} (${wsol ? 'wsolevaluation uint8' : s.thresholding}); accuracies in percent.\n`;
  return md;
}

/** The files `gapcam evaluate` owns in its --out folder; a rerun replaces them (an evaluation is reproducible). */
export const EVALUATION_OUTPUT: OutputOwner = {
  command: 'gapcam evaluate',
  marker: 'evaluation.json',
  ownsMarker: jsonHas('kind', 'evaluation'),
  files: ['evaluation.md', 'per-image.csv', 'confusion.csv', 'skipped.txt'],
  rerun: 'replace',
};

/** Checks and creates the --out folder of an evaluation (before any work, so a bad folder fails at once). */
export function prepareEvaluationFolder(outDir: string): void {
  prepareOutFolder(outDir, EVALUATION_OUTPUT);
}

/** Writes the evaluation's files into `outDir`, each atomically, evaluation.json last. `skipped` lists images left
 *  out by --skip-bad-images (skipped.txt, written only when there are some). */
export async function writeEvaluation(outDir: string, report: EvaluationReport, perImageCsv: string, classNames: readonly string[],
  confusion: readonly (readonly number[])[] = report.metrics.classification.confusion, skipped: readonly { file: string; reason: string }[] = []): Promise<void> {
  const prepared = prepareOutFolder(outDir, EVALUATION_OUTPUT);
  await writeOwnFiles(prepared, EVALUATION_OUTPUT, [
    ['per-image.csv', perImageCsv],
    ['confusion.csv', confusionCsvCompact(confusion, classNames)],
    ...(skipped.length ? [['skipped.txt', skipped.map((s) => `${s.file}\t${s.reason}\n`).join('')] as [string, string]] : []),
    ['evaluation.md', markdownSummary(report)],
    ['evaluation.json', JSON.stringify(report, null, 2) + '\n'],
  ]);
}
