// Named datasets and the one entry point, loadDataset(name, { dataRoot }). A named dataset is one entry in the typed
// registry below; a layout on disk is one adapter in ./adapters. Names that are not registered are tried as a path
// (folder or CSV; `layout:path` forces a layout) and then as a folder under the data root.
import fs from 'node:fs';
import path from 'node:path';
import type { Dataset, Split } from './types.js';
import { detectLayout, layoutNames, layouts, type LayoutName, type LayoutOptions } from './adapters/index.js';
import { loadCub } from './adapters/cub.js';
import { loadVocFolders, isVocFolder } from './adapters/voc.js';
import { EMBEDDED_NAME, embeddedDatasetDir, embeddedDatasetPresent, ensureEmbeddedDataset } from './embedded.js';
import { splitCounts } from './split.js';
import { readSpaceTable } from './util.js';
import { UserError } from '../errors.js';
import { defaultDataRoot } from '../paths.js';

export interface LoadDatasetOptions extends Omit<LayoutOptions, 'name' | 'extraFolders'> {
  /** Folder holding the datasets (default: the project's datasets/; GAPCAM_DATA_ROOT overrides the default). */
  dataRoot?: string;
  /** digits-loc only: build it when missing (default true). */
  build?: boolean;
  /** Fewest classes (with at least one image) the caller can use: 2 by default, since training a classifier or an
   *  SVM on one class is meaningless (and fails deep inside TensorFlow); 1 for commands that classify with a model's
   *  own classes (evaluate and cam with --class-map, features). */
  minClasses?: number;
}

export interface NamedDataset {
  describe: string;
  /** Where the dataset lives under the data root. */
  location(dataRoot: string): string;
  present(dataRoot: string): boolean;
  load(dataRoot: string, options: LoadDatasetOptions): Promise<Dataset>;
  /** Image counts per split without loading images (cheap), when present. */
  count?(dataRoot: string): Partial<Record<Split, number>>;
}

export type DatasetName = 'digits-loc' | 'cub200' | 'wild2';
export const DEFAULT_DATASET: DatasetName = 'digits-loc';
/** The fixed split of wild2: 30 % of each class in test, seeded by this string (never by --seed). */
export const WILD2_SPLIT_SEED = 'wild2';
export const WILD2_TEST_FRACTION = 0.3;

function countCub(dir: string): Partial<Record<Split, number>> {
  const rows = readSpaceTable(path.join(dir, 'train_test_split.txt'), 'CUB split file', 2);
  const train = rows.filter((r) => r.fields[1] === '1').length;
  return { train, test: rows.length - train };
}

const cubDir = (dataRoot: string) => path.join(dataRoot, 'cub200', 'CUB_200_2011');
const wild2Folders = (dataRoot: string) => [path.join(dataRoot, 'kangaroo'), path.join(dataRoot, 'raccoon')];

export const namedDatasets: Record<DatasetName, NamedDataset> = {
  'digits-loc': {
    describe: 'embedded: 10 MNIST digit classes pasted on 96×96 cluttered canvases, exact boxes (built locally, no download)',
    location: embeddedDatasetDir,
    present: (root) => embeddedDatasetPresent(root),
    load: async (root, o) => {
      if (o.build === false && !embeddedDatasetPresent(root)) throw new UserError(`dataset digits-loc not found in ${embeddedDatasetDir(root)}: build it with 'gapcam datasets prepare'`);
      const dir = await ensureEmbeddedDataset(root);
      return loadCub(dir, { ...o, name: EMBEDDED_NAME });
    },
    count: (root) => countCub(embeddedDatasetDir(root)),
  },
  cub200: {
    describe: 'CUB-200-2011: 200 bird species, 11,788 photos (5,994 train / 5,794 test), one box each',
    location: cubDir,
    present: (root) => fs.existsSync(path.join(cubDir(root), 'images.txt')),
    load: async (root, o) => {
      const dir = cubDir(root);
      if (!fs.existsSync(path.join(dir, 'images.txt'))) {
        throw new UserError(`dataset cub200 not found: looked for ${path.join(dir, 'images.txt')}; download CUB_200_2011.tgz from the Caltech data site (data.caltech.edu, "Caltech-UCSD Birds-200-2011") and unpack it with: mkdir -p ${path.join(root, 'cub200')} && tar xzf CUB_200_2011.tgz -C ${path.join(root, 'cub200')}`);
      }
      return loadCub(dir, { ...o, name: 'cub200' });
    },
    count: (root) => countCub(cubDir(root)),
  },
  wild2: {
    describe: 'kangaroo vs raccoon: 364 real photos from two Pascal VOC folders, boxes, fixed seeded 70/30 split',
    location: (root) => `${path.join(root, 'kangaroo')} + ${path.join(root, 'raccoon')}`,
    present: (root) => wild2Folders(root).every(isVocFolder),
    load: async (root, o) => {
      const folders = wild2Folders(root);
      const missing = folders.filter((f) => !isVocFolder(f));
      if (missing.length) {
        throw new UserError(`dataset wild2 not found: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not a VOC folder (images/ + annotations/); the kangaroo and raccoon photo sets are in ../shared/datasets (use --data-root ../shared/datasets)`);
      }
      return loadVocFolders(folders, { ...o, name: 'wild2', classFrom: 'folder', testFraction: WILD2_TEST_FRACTION, splitSeed: WILD2_SPLIT_SEED, trainPerClass: undefined, testPerClass: undefined });
    },
  },
};

export function datasetNames(): DatasetName[] {
  return Object.keys(namedDatasets) as DatasetName[];
}

export function isDatasetName(name: string): name is DatasetName {
  return Object.prototype.hasOwnProperty.call(namedDatasets, name);
}

export function resolveDataRoot(dataRoot?: string): string {
  return path.resolve(dataRoot ?? process.env.GAPCAM_DATA_ROOT ?? defaultDataRoot());
}

/** Loads a dataset by registered name, `layout:path`, path, or folder name under the data root (default: digits-loc)
 *  and checks it has images of at least `options.minClasses` (default 2) classes. */
export async function loadDataset(name: string = DEFAULT_DATASET, options: LoadDatasetOptions = {}): Promise<Dataset> {
  const dataset = await loadDatasetAnyClasses(name, options);
  checkClassCount(dataset, options.minClasses ?? 2);
  return dataset;
}

/** A UserError when `dataset` has images of fewer than `min` classes (a one-class folder, or every image of the other
 *  classes skipped or missing). */
export function checkClassCount(dataset: Dataset, min: number): void {
  if (min <= 1) return;
  const present = [...new Set(dataset.records.map((r) => r.label))].sort((a, b) => a - b).map((k) => dataset.classNames[k]);
  if (present.length >= min) return;
  const found = present.length === 0 ? 'no image at all' : `images of only ${present.length} class (${present.join(', ')})`;
  const listed = dataset.classNames.length > present.length ? ` of the ${dataset.classNames.length} it lists` : '';
  throw new UserError(`dataset '${dataset.name}' (${dataset.root}) has ${found}${listed}; training a classifier needs at least ${min} classes (a folder per class, or a class column)`);
}

async function loadDatasetAnyClasses(name: string, options: LoadDatasetOptions): Promise<Dataset> {
  const dataRoot = resolveDataRoot(options.dataRoot);
  const layoutOptions: LayoutOptions = {
    skipBadImages: options.skipBadImages, testFraction: options.testFraction, splitSeed: options.splitSeed, classFrom: options.classFrom,
    trainPerClass: options.trainPerClass, testPerClass: options.testPerClass,
  };
  if (isDatasetName(name)) return namedDatasets[name].load(dataRoot, options);
  const forced = /^([a-z]+):(.+)$/.exec(name);
  if (forced && (layoutNames() as string[]).includes(forced[1])) {
    const root = path.resolve(forced[2]);
    if (!fs.existsSync(root)) throw new UserError(`dataset path not found: ${root}`);
    return layouts[forced[1] as LayoutName].load(root, layoutOptions);
  }
  const candidates = [path.resolve(name), path.join(dataRoot, name)];
  for (const root of candidates) {
    if (!fs.existsSync(root)) continue;
    // A folder holding CUB_200_2011/ (as unpacked from the archive) is read as CUB.
    const cubInside = path.join(root, 'CUB_200_2011');
    const target = layouts.cub.detect(cubInside) ? cubInside : root;
    const layout = detectLayout(target);
    if (!layout) throw new UserError(`cannot tell the layout of ${target}: expected CUB-200-2011 files, VOC images/+annotations/, <class>/ image folders or a .csv manifest`);
    return layouts[layout].load(target, { ...layoutOptions, name: path.basename(name) });
  }
  throw new UserError(`unknown dataset '${name}': expected one of ${datasetNames().join(', ')}, a folder or .csv path, or a folder under ${dataRoot}`);
}

export interface DatasetListing {
  name: string;
  describe: string;
  location: string;
  present: boolean;
  counts?: Partial<Record<Split, number>>;
  classes?: number;
  error?: string;
}

/** Every registered dataset (present or not) plus any other dataset folder/CSV found directly under the data root. */
export async function listDatasets(dataRootOption?: string): Promise<DatasetListing[]> {
  const dataRoot = resolveDataRoot(dataRootOption);
  const out: DatasetListing[] = [];
  for (const name of datasetNames()) {
    const d = namedDatasets[name];
    const entry: DatasetListing = { name, describe: d.describe, location: d.location(dataRoot), present: d.present(dataRoot) };
    if (entry.present) {
      try {
        if (d.count) entry.counts = d.count(dataRoot);
        else {
          const ds = await d.load(dataRoot, { skipBadImages: true, build: false });
          entry.counts = splitCounts(ds);
          entry.classes = ds.classNames.length;
        }
      } catch (err) {
        entry.error = (err as Error).message;
      }
    }
    out.push(entry);
  }
  const claimed = new Set(['cub200', EMBEDDED_NAME, 'kangaroo', 'raccoon']);
  if (fs.existsSync(dataRoot)) {
    for (const e of fs.readdirSync(dataRoot, { withFileTypes: true })) {
      if (e.name.startsWith('.') || claimed.has(e.name) || e.name.endsWith('.old') || e.name.includes('.tmp-')) continue;
      const p = path.join(dataRoot, e.name);
      const layout = detectLayout(layouts.cub.detect(path.join(p, 'CUB_200_2011')) ? path.join(p, 'CUB_200_2011') : p);
      if (!layout) continue;
      const entry: DatasetListing = { name: e.name, describe: layouts[layout].describe, location: p, present: true };
      try {
        const ds = await loadDataset(e.name, { dataRoot, skipBadImages: true, minClasses: 1 });
        entry.counts = splitCounts(ds);
        entry.classes = ds.classNames.length;
      } catch (err) {
        entry.error = (err as Error).message;
      }
      out.push(entry);
    }
  }
  return out;
}
