// `gapcam svm`: fit a one-vs-rest linear SVM on one feature folder (C by cross-validation), score another, save the
// model, the predictions and a report.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readFeatureSet, subsetFeatures, type FeatureSet } from '../features/store.js';
import { crossValidateC, DEFAULT_C_GRID, DEFAULT_FOLDS, type CvResult } from './cv.js';
import { fitLinearSvm, predictLinearSvm, type LinearSvmModel, type LinearSvmOptions } from './linear-svm.js';
import { scorePredictions, type ClassificationScores } from './metrics.js';
import type { ScaleMode } from './scale.js';
import { prepareOutFolder, writeOwnFiles, type OutputOwner } from '../util/out-folder.js';
import { UserError } from '../errors.js';
import { csvField } from '../util/csv.js';

export interface SvmSettings extends Omit<LinearSvmOptions, 'C'> {
  cGrid?: number[];
  folds?: number;
  scale?: ScaleMode;
}

export const DEFAULT_SCALE: ScaleMode = 'standard';

export interface PredictionRow {
  row: number;
  imageId: string;
  path: string;
  trueClass: number;
  trueName: string;
  predictedClass: number;
  predictedName: string;
  correct: boolean;
  score: number;
}

export interface SvmResult {
  model: LinearSvmModel;
  cv?: CvResult;
  trainCount: number;
  test?: ClassificationScores;
  predictions: PredictionRow[];
  /** Wall-clock seconds: cross-validation, final fit, prediction. */
  seconds: { cv: number; fit: number; predict: number };
}

/** Class ids of `test` rows in the class list of `train` (matched by class name when the lists differ). */
export function alignTestLabels(train: FeatureSet, test: FeatureSet, what = 'svm'): Int32Array {
  const names = train.meta.classNames;
  const same = names.length === test.meta.classNames.length && names.every((n, i) => n === test.meta.classNames[i]);
  const byName = new Map(names.map((n, i) => [n, i]));
  const out = new Int32Array(test.count);
  test.rows.forEach((r, i) => {
    const k = same ? r.classId : byName.get(r.className);
    if (k === undefined || k >= names.length) {
      throw new UserError(`${what}: test class '${r.className}' (${test.dir}, row ${r.row}) is not among the ${names.length} training classes of ${train.dir}`);
    }
    out[i] = k;
  });
  return out;
}

export function checkSameDimension(train: FeatureSet, test: FeatureSet, what = 'svm'): void {
  if (train.dimension !== test.dimension) {
    throw new UserError(
      `${what}: --test features ${test.dir} are ${test.dimension}-dimensional but --train features ${train.dir} are ${train.dimension}-dimensional (extract both with the same checkpoint and --layer)`,
    );
  }
}

/** Fits on `train` (C by CV over the grid) and scores `test` when given. Pure computation, no files. */
export function trainAndTestSvm(train: FeatureSet, test: FeatureSet | undefined, settings: SvmSettings = {}): SvmResult {
  if (test) checkSameDimension(train, test);
  if (train.count < 2) throw new UserError(`svm: --train features ${train.dir} hold ${train.count} row(s); need at least 2`);
  const testLabels = test ? alignTestLabels(train, test) : undefined;
  const labels = Int32Array.from(train.rows, (r) => r.classId);
  const classNames = train.meta.classNames;
  for (const r of train.rows) {
    if (r.classId >= classNames.length) throw new UserError(`svm: ${train.dir} row ${r.row} has class id ${r.classId}, but features.json lists ${classNames.length} classes`);
  }
  const options = { ...settings, scale: settings.scale ?? DEFAULT_SCALE, cGrid: settings.cGrid ?? DEFAULT_C_GRID, folds: settings.folds ?? DEFAULT_FOLDS };
  const raw = { data: train.data, rows: train.count, cols: train.dimension };
  const t0 = performance.now();
  const cv = options.cGrid.length > 1 ? crossValidateC(raw, labels, classNames.length, options) : undefined;
  const t1 = performance.now();
  const model = fitLinearSvm(raw, labels, classNames, { ...options, C: cv ? cv.bestC : options.cGrid[0] });
  const t2 = performance.now();
  const result: SvmResult = { model, cv, trainCount: train.count, predictions: [], seconds: { cv: (t1 - t0) / 1000, fit: (t2 - t1) / 1000, predict: 0 } };
  if (test && testLabels) {
    const t3 = performance.now();
    const pred = predictLinearSvm(model, { data: test.data, rows: test.count, cols: test.dimension });
    result.seconds.predict = (performance.now() - t3) / 1000;
    const K = model.weights.length;
    result.test = scorePredictions(testLabels, pred.predicted, K);
    result.predictions = test.rows.map((r, i) => ({
      row: r.row,
      imageId: r.imageId,
      path: r.path,
      trueClass: testLabels[i],
      trueName: classNames[testLabels[i]],
      predictedClass: pred.predicted[i],
      predictedName: classNames[pred.predicted[i]],
      correct: pred.predicted[i] === testLabels[i],
      score: pred.scores[i * K + pred.predicted[i]],
    }));
  }
  return result;
}


export function encodePredictionsCsv(rows: PredictionRow[]): string {
  const head = 'row,image_id,path,true_class_id,true_class,predicted_class_id,predicted_class,correct,score';
  const lines = rows.map((r) =>
    [r.row, r.imageId, r.path, r.trueClass, r.trueName, r.predictedClass, r.predictedName, r.correct ? 1 : 0, r.score.toPrecision(7)].map(csvField).join(','),
  );
  return [head, ...lines].join('\n') + '\n';
}

export function pct(x: number): string {
  return Number.isFinite(x) ? (100 * x).toFixed(2) : '—';
}

export function svmReportMarkdown(r: SvmResult, trainDir: string, testDir?: string): string {
  const lines = [`# Linear SVM`, '', `- train: \`${trainDir}\` (${r.trainCount} rows, ${r.model.dimension}-D, ${r.model.classNames.length} classes)`];
  if (testDir) lines.push(`- test: \`${testDir}\` (${r.test?.count ?? 0} rows)`);
  lines.push(`- solver: ${r.model.solver}, one-vs-rest, bias feature ${r.model.bias}, eps ${r.model.eps}; scaling: ${r.model.scale.mode}`);
  if (r.cv) {
    lines.push(`- C by ${r.cv.folds}-fold stratified cross-validation on the training rows:`, '', '| C | CV accuracy % |', '|---:|---:|');
    for (const p of r.cv.grid) lines.push(`| ${p.C} | ${pct(p.accuracy)}${p.C === r.cv.bestC ? ' ←' : ''} |`);
    lines.push('');
  }
  lines.push(`- chosen C: **${r.model.C}**${r.model.converged ? '' : ' (the solver hit its iteration limit on some class; results are approximate)'}`);
  if (r.test) {
    lines.push(`- test accuracy: **${pct(r.test.accuracy)} %** (${r.test.correct}/${r.test.count}); mean per-class accuracy: **${pct(r.test.meanPerClassAccuracy)} %**`);
  }
  lines.push(`- cross-validation ${r.seconds.cv.toFixed(2)} s, final fit ${r.seconds.fit.toFixed(2)} s, predict ${r.seconds.predict.toFixed(3)} s`);
  return lines.join('\n') + '\n';
}

export interface RunSvmOptions extends SvmSettings {
  train: string;
  test?: string;
  /** Keep only the rows of this split (index.csv's split column), e.g. both folders the same with train/test. */
  trainSplit?: string;
  testSplit?: string;
  out?: string;
}

/** The rows of `set` whose split is `split` (all rows when undefined); a UserError when none. */
export function rowsOfSplit(set: FeatureSet, split: string | undefined, flag: string): FeatureSet {
  if (split === undefined) return set;
  const idx = set.rows.map((r, i) => (r.split === split ? i : -1)).filter((i) => i >= 0);
  if (!idx.length) {
    const have = [...new Set(set.rows.map((r) => r.split))].join(', ') || 'none';
    throw new UserError(`${flag} ${split}: ${set.dir} has no rows of split '${split}' (splits there: ${have})`);
  }
  return subsetFeatures(set, idx);
}

/** The files `gapcam svm` owns in its --out folder; a rerun replaces them atomically (a fit is cheap and
 *  reproducible). A model.json there that svm did not write (no svm.json beside it) is refused. */
export const SVM_OUTPUT: OutputOwner = {
  command: 'gapcam svm',
  marker: 'svm.json',
  files: ['model.json', 'predictions.csv', 'svm.md'],
  rerun: 'replace',
};

export interface RunSvmOutput {
  out: string;
  result: SvmResult;
  markdown: string;
}

/** Reads the feature folders, fits, scores and writes model.json, predictions.csv, svm.json and svm.md to `out`. */
export async function runSvm(options: RunSvmOptions): Promise<RunSvmOutput> {
  const train = rowsOfSplit(readFeatureSet(options.train), options.trainSplit, '--train-split');
  const testDir = options.test ?? (options.testSplit ? options.train : undefined);
  const test = testDir ? rowsOfSplit(readFeatureSet(testDir), options.testSplit, '--test-split') : undefined;
  const result = trainAndTestSvm(train, test, options);
  const out = path.resolve(
    options.out ??
      path.join(
        path.dirname(train.dir),
        `svm-${path.basename(train.dir)}${options.trainSplit ? `-${options.trainSplit}` : ''}${test ? `-vs-${path.basename(test.dir)}${options.testSplit ? `-${options.testSplit}` : ''}` : ''}`,
      ),
  );
  const markdown = svmReportMarkdown(result, train.dir, test?.dir);
  const report = {
    train: { dir: train.dir, count: train.count, cacheKey: train.meta.cacheKey, source: train.meta.source },
    test: test ? { dir: test.dir, count: test.count, cacheKey: test.meta.cacheKey, source: test.meta.source } : undefined,
    settings: { ...options, scale: result.model.scale.mode },
    C: result.model.C,
    cv: result.cv,
    scores: result.test,
    seconds: result.seconds,
  };
  const prepared = prepareOutFolder(out, SVM_OUTPUT);
  await writeOwnFiles(prepared, SVM_OUTPUT, [
    ['model.json', JSON.stringify(result.model) + '\n'],
    ...(test ? [['predictions.csv', encodePredictionsCsv(result.predictions)] as [string, string]] : []),
    ['svm.md', markdown],
    ['svm.json', JSON.stringify(report, null, 2) + '\n'],
  ]);
  return { out, result, markdown };
}

/** Loads a model.json written by runSvm. */
export function loadSvmModel(file: string): LinearSvmModel {
  const p = fs.existsSync(file) && fs.statSync(file).isDirectory() ? path.join(file, 'model.json') : file;
  if (!fs.existsSync(p)) throw new UserError(`${file}: no SVM model.json there`);
  const m = JSON.parse(fs.readFileSync(p, 'utf8')) as LinearSvmModel;
  if (m.format !== 'gapcam-linear-svm') throw new UserError(`${p}: not a gapcam linear SVM model (format '${String(m.format)}')`);
  return m;
}
