// `gapcam transfer <experiment>`: features + linear SVM for every (feature source, dataset) of an experiment, mean ±
// std over random splits, written as a table (Markdown, CSV, JSON) shaped like the CAM paper's Table 5.
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Dataset } from '../data/types.js';
import { loadDataset, resolveDataRoot } from '../data/datasets.js';
import { ensureFeatures, loadFeatureModel, type LoadedFeatureModel } from '../features/service.js';
import { readFeatureSet, subsetFeatures } from '../features/store.js';
import { trainAndTestSvm } from '../svm/service.js';
import { DEFAULT_C_GRID, DEFAULT_FOLDS } from '../svm/cv.js';
import { prepareOutFolder, writeOwnFiles, type OutputOwner } from '../util/out-folder.js';
import { defaultCheckpointRoot } from '../paths.js';
import { UserError } from '../errors.js';
import { loadExperiment, type Experiment, type TransferDataset, type TransferSource } from './experiment.js';
import { datasetSplit, meanStd, randomSplit, samplePool, withoutClasses } from './protocol.js';
import { renderCsv, renderMarkdown, protocolText } from './table.js';
import type { CellResult, DatasetStatus, SourceStatus, SplitResult, TransferResult } from './types.js';
import { slug } from '../util/names.js';

export interface RunTransferOptions {
  /** Default data root for datasets that do not name one. */
  dataRoot?: string;
  out?: string;
  checkpointRoot?: string;
  /** Re-extract features even when cached. */
  force?: boolean;
  /** Only these sources / datasets (by name). */
  onlySources?: string[];
  onlyDatasets?: string[];
  log?: (line: string) => void;
  onProgress?: (done: number, total: number) => void;
}

function pick<T extends { name: string }>(items: T[], only: string[] | undefined, what: string, file: string): T[] {
  if (!only?.length) return items;
  for (const n of only) if (!items.some((i) => i.name === n)) throw new UserError(`--${what}: '${n}' is not in ${file} (it has ${items.map((i) => `'${i.name}'`).join(', ')})`);
  return items.filter((i) => only.includes(i.name));
}

async function loadTargetDataset(d: TransferDataset, exp: Experiment, dataRoot: string): Promise<{ dataset?: Dataset; status: DatasetStatus }> {
  const status: DatasetStatus = { name: d.name, dataset: d.dataset!, present: false, protocol: protocolText(d, exp.splits), where: d.where };
  try {
    let dataset = await loadDataset(d.dataset, { dataRoot: d.dataRoot ?? dataRoot, skipBadImages: exp.skipBadImages });
    const unknown = d.excludeClasses.filter((c) => !dataset.classNames.includes(c));
    if (unknown.length) throw new UserError(`excludeClasses: ${unknown.join(', ')} not among the classes of ${dataset.name}`);
    dataset = withoutClasses(dataset, d.excludeClasses);
    if (d.poolPerClass) dataset = { ...dataset, records: samplePool(dataset.records, dataset.classNames, d.poolPerClass, exp.seed) };
    if (dataset.classNames.length < 2) throw new UserError(`dataset ${dataset.name} has ${dataset.classNames.length} class(es); a classifier needs 2 or more`);
    return { dataset, status: { ...status, present: true, images: dataset.records.length, classes: dataset.classNames.length } };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { status: { ...status, message: err.message } };
  }
}

async function loadSource(s: TransferSource, checkpointRoot: string): Promise<{ model?: LoadedFeatureModel; status: SourceStatus }> {
  const status: SourceStatus = { name: s.name, checkpoint: s.checkpoint, present: false, layer: s.layer, crop: s.crop, hint: s.hint };
  try {
    const model = await loadFeatureModel(s.checkpoint, { checkpointRoot });
    return { model, status: { ...status, present: true } };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { status: { ...status, message: err.message } };
  }
}

/** Features of one (source, dataset), then one SVM per split. */
/** A C chosen at the end of its grid may be no optimum at all (the accuracy may still rise past it): one line saying
 *  so, or undefined when every chosen C is inside the grid (or the grid has one value). */
export function cGridEdgeWarning(chosen: readonly number[], grid: readonly number[]): string | undefined {
  if (grid.length < 2) return undefined;
  const lo = Math.min(...grid), hi = Math.max(...grid);
  const atLo = chosen.filter((c) => c === lo).length, atHi = chosen.filter((c) => c === hi).length;
  if (!atLo && !atHi) return undefined;
  const where = [atLo ? `the smallest C (${lo}) in ${atLo}` : '', atHi ? `the largest C (${hi}) in ${atHi}` : ''].filter(Boolean).join(' and ');
  return `cross-validation chose ${where} of ${chosen.length} split(s): the best C may lie outside the grid; widen svm.cGrid`;
}

async function runCell(exp: Experiment, src: TransferSource, model: LoadedFeatureModel, d: TransferDataset, dataset: Dataset, out: string, o: RunTransferOptions): Promise<CellResult> {
  const cell: CellResult = { source: src.name, dataset: d.name, status: 'ok' };
  const featDir = path.join(out, 'features', slug(src.name), slug(d.name));
  const feat = await ensureFeatures({
    model,
    dataset,
    records: dataset.records,
    split: d.poolPerClass ? `pool${d.poolPerClass}` : 'all',
    out: featDir,
    force: o.force,
    extract: { layer: src.layer, crop: src.crop, camThreshold: src.camThreshold, batchSize: exp.batchSize, skipBadImages: exp.skipBadImages, onProgress: o.onProgress },
    onStart: (reused, count) => o.log?.(`  ${src.name} × ${d.name}: ${reused ? 'reusing' : 'extracting'} features of ${count} images`),
  });
  const set = readFeatureSet(feat.dir);
  const skipped = ((feat.meta.extra?.skippedImages as unknown[] | undefined) ?? []).length;
  cell.features = { dir: feat.dir, count: set.count, dimension: set.dimension, reused: feat.reused, seconds: feat.meta.seconds, imagesPerSecond: feat.meta.imagesPerSecond, skipped };
  const nSplits = d.protocol === 'dataset' ? 1 : d.splits ?? exp.splits;
  const t0 = performance.now();
  cell.splits = [];
  const short = new Set<string>();
  for (let i = 0; i < nSplits; i++) {
    const split = d.protocol === 'dataset'
      ? datasetSplit(set.rows)
      : randomSplit(set.rows, set.meta.classNames, { trainPerClass: d.trainPerClass!, testPerClass: d.testPerClass, seed: exp.seed, index: i });
    split.shortClasses.forEach((c) => short.add(c));
    if (!split.train.length || !split.test.length) throw new UserError(`${d.name}: split ${i + 1} has ${split.train.length} training and ${split.test.length} test images`);
    const train = subsetFeatures(set, split.train);
    const test = subsetFeatures(set, split.test);
    const r = trainAndTestSvm(train, test, { ...exp.svm, seed: `${exp.seed}/${i}` });
    cell.splits.push({
      index: i,
      trainCount: train.count,
      testCount: test.count,
      C: r.model.C,
      cvAccuracy: r.cv?.grid.find((p) => p.C === r.model.C)?.accuracy,
      accuracy: r.test!.accuracy,
      meanPerClassAccuracy: r.test!.meanPerClassAccuracy,
    });
  }
  cell.svmSeconds = (performance.now() - t0) / 1000;
  const edge = cGridEdgeWarning(cell.splits.map((sp) => sp.C), exp.svm.cGrid ?? DEFAULT_C_GRID);
  if (edge) o.log?.(`  ${src.name} × ${d.name}: warning: ${edge}`);
  if (short.size) cell.shortClasses = [...short];
  cell.accuracy = meanStd(cell.splits.map((s) => s.accuracy));
  cell.meanPerClass = meanStd(cell.splits.map((s) => s.meanPerClassAccuracy));
  const m = exp.metric === 'accuracy' ? cell.accuracy : cell.meanPerClass;
  cell.mean = m.mean;
  cell.std = m.std;
  return cell;
}

/** What `gapcam transfer` owns in its --out folder (plus the feature caches under features/<source>/<dataset>/,
 *  which gapcam features owns); a rerun replaces them atomically, reusing cached features. */
export const TRANSFER_OUTPUT: OutputOwner = {
  command: 'gapcam transfer',
  marker: 'results.json',
  ownsMarker: (text) => /"experiment"/.test(text) && /"cells"/.test(text),
  files: ['table.md', 'table.csv'],
  rerun: 'replace',
};

export async function runTransfer(ref: string, o: RunTransferOptions = {}): Promise<TransferResult & { markdown: string }> {
  const t0 = performance.now();
  const exp = loadExperiment(ref);
  const dataRoot = resolveDataRoot(o.dataRoot);
  const checkpointRoot = o.checkpointRoot ?? defaultCheckpointRoot();
  const out = path.resolve(o.out ?? path.join(checkpointRoot, 'transfer', exp.name));
  const prepared = prepareOutFolder(out, TRANSFER_OUTPUT);
  const sources = pick(exp.sources, o.onlySources, 'source', exp.file);
  const datasetsWanted = pick(exp.datasets, o.onlyDatasets, 'dataset', exp.file);

  const datasets: { spec: TransferDataset; dataset?: Dataset; status: DatasetStatus }[] = [];
  for (const d of datasetsWanted) {
    o.log?.(`dataset ${d.name}: loading ${d.dataset}`);
    const loaded = await loadTargetDataset(d, exp, dataRoot);
    datasets.push({ spec: d, ...loaded });
    o.log?.(loaded.dataset ? `  ${loaded.status.images} images, ${loaded.status.classes} classes` : `  missing: ${loaded.status.message}`);
  }
  const cells: CellResult[] = [];
  const sourceStatuses: SourceStatus[] = [];
  // Each distinct checkpoint is loaded once and disposed after the last source that reads it.
  const loadedModels = new Map<string, Promise<{ model?: LoadedFeatureModel; status: SourceStatus }>>();
  const lastUse = new Map(sources.map((s, i) => [s.checkpoint, i]));
  const disposed = new Set<string>();
  try {
    for (const [si, s] of sources.entries()) {
      if (!loadedModels.has(s.checkpoint)) o.log?.(`source ${s.name}: loading ${s.checkpoint}`);
      else o.log?.(`source ${s.name}: same model as above`);
      const shared = loadedModels.get(s.checkpoint) ?? loadSource(s, checkpointRoot);
      loadedModels.set(s.checkpoint, shared);
      const { model, status: loadedStatus } = await shared;
      const status: SourceStatus = { ...loadedStatus, name: s.name, layer: s.layer, crop: s.crop, hint: s.hint };
      sourceStatuses.push(status);
      if (!model) o.log?.(`  missing: ${status.message}`);
      try {
        for (const d of datasets) {
          if (!model) {
            cells.push({ source: s.name, dataset: d.spec.name, status: 'missing-source', message: status.message });
            continue;
          }
          if (!d.dataset) {
            cells.push({ source: s.name, dataset: d.spec.name, status: 'missing-dataset', message: d.status.message });
            continue;
          }
          try {
            const cell = await runCell(exp, s, model, d.spec, d.dataset, out, o);
            status.dimension = cell.features?.dimension;
            cells.push(cell);
            o.log?.(`  ${s.name} × ${d.spec.name}: ${(100 * cell.mean!).toFixed(2)} ± ${(100 * cell.std!).toFixed(2)} % (${exp.metric}, ${cell.splits!.length} split(s))`);
          } catch (err) {
            if (!(err instanceof UserError)) throw err;
            cells.push({ source: s.name, dataset: d.spec.name, status: 'failed', message: err.message });
            o.log?.(`  ${s.name} × ${d.spec.name}: failed: ${err.message}`);
          }
        }
      } finally {
        if (lastUse.get(s.checkpoint) === si && model) {
          model.fm.model.dispose();
          disposed.add(s.checkpoint);
        }
      }
    }
  } finally {
    // After an unexpected error, models still loaded are disposed too.
    for (const [ck, p] of loadedModels) {
      if (disposed.has(ck)) continue;
      const { model } = await p.catch(() => ({ model: undefined }));
      model?.fm.model.dispose();
    }
  }
  const result: TransferResult = {
    experiment: exp.name,
    file: exp.file,
    description: exp.description,
    out,
    metric: exp.metric,
    svm: {
      cGrid: exp.svm.cGrid ?? DEFAULT_C_GRID,
      folds: exp.svm.folds ?? DEFAULT_FOLDS,
      scale: exp.svm.scale ?? 'standard',
      solver: 'LIBLINEAR -s 1 (L2-regularised squared hinge, dual coordinate descent), one-vs-rest, bias feature 1',
    },
    seed: exp.seed,
    datasets: datasets.map((d) => d.status),
    sources: sourceStatuses,
    cells,
    seconds: (performance.now() - t0) / 1000,
    createdAt: new Date().toISOString(),
  };
  const markdown = renderMarkdown(result);
  await writeOwnFiles(prepared, TRANSFER_OUTPUT, [
    ['table.md', markdown],
    ['table.csv', renderCsv(result)],
    ['results.json', JSON.stringify(result, null, 2) + '\n'],
  ]);
  return { ...result, markdown };
}
