// Train/test protocols of the transfer experiments: seeded per-class sampling, as the transfer literature does it
// (e.g. Caltech-101: 30 training images per class, the rest — or up to 50 — for testing; several random splits).
import { makeRng, shuffleInPlace } from '../util/random.js';
import type { Dataset, ImageRecord } from '../data/types.js';
import { naturalCompare } from '../data/util.js';

export interface ProtocolSplit {
  train: number[];
  test: number[];
  /** Classes with fewer images than trainPerClass + 1 (they got fewer training images; at least one test image
   *  is kept whenever the class has two or more). */
  shortClasses: string[];
}

function shuffled<T>(items: T[], seed: string): T[] {
  return shuffleInPlace([...items], makeRng(seed));
}

/** Row indices grouped by class id, each group sorted by image id (so sampling depends only on ids and seed). */
export function rowsByClass(rows: readonly { classId: number; imageId: string }[]): Map<number, number[]> {
  const by = new Map<number, number[]>();
  rows.forEach((r, i) => {
    const list = by.get(r.classId) ?? [];
    list.push(i);
    by.set(r.classId, list);
  });
  for (const list of by.values()) list.sort((a, b) => naturalCompare(rows[a].imageId, rows[b].imageId));
  return by;
}

/**
 * Split `index` (0-based) of the random protocol: in each class, the rows shuffled by a generator seeded with
 * (seed, split index, class name); the first trainPerClass are train, the next testPerClass (default: all the
 * rest) are test. Deterministic: the same seed and rows give the same split on every machine.
 */
export function randomSplit(
  rows: readonly { classId: number; imageId: string }[],
  classNames: readonly string[],
  o: { trainPerClass: number; testPerClass?: number; seed: string | number; index: number },
): ProtocolSplit {
  const train: number[] = [];
  const test: number[] = [];
  const shortClasses: string[] = [];
  const by = rowsByClass(rows);
  for (const k of [...by.keys()].sort((a, b) => a - b)) {
    const list = shuffled(by.get(k)!, `transfer/${o.seed}/${o.index}/${classNames[k]}`);
    let nTrain = Math.min(o.trainPerClass, list.length);
    if (list.length < o.trainPerClass + 1) {
      shortClasses.push(classNames[k]);
      if (list.length >= 2) nTrain = Math.min(nTrain, list.length - 1);
    }
    train.push(...list.slice(0, nTrain));
    test.push(...list.slice(nTrain, o.testPerClass === undefined ? undefined : nTrain + o.testPerClass));
  }
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b), shortClasses };
}

/** The dataset's own split: its train rows vs its test rows (its val rows when it has no test rows). */
export function datasetSplit(rows: readonly { split: string }[]): ProtocolSplit {
  const testName = rows.some((r) => r.split === 'test') ? 'test' : 'val';
  const train: number[] = [];
  const test: number[] = [];
  rows.forEach((r, i) => {
    if (r.split === 'train') train.push(i);
    else if (r.split === testName) test.push(i);
  });
  return { train, test, shortClasses: [] };
}

/** A seeded sample of at most `perClass` records of each class (all of a smaller class), in the dataset's order. */
export function samplePool(records: readonly ImageRecord[], classNames: readonly string[], perClass: number, seed: string | number): ImageRecord[] {
  const rows = records.map((r) => ({ classId: r.label, imageId: r.id }));
  const keep = new Set<number>();
  for (const [k, list] of rowsByClass(rows)) for (const i of shuffled(list, `transfer-pool/${seed}/${classNames[k]}`).slice(0, perClass)) keep.add(i);
  return records.filter((_, i) => keep.has(i));
}

/** The dataset without the named classes, labels renumbered (0-based, in the original order). */
export function withoutClasses(dataset: Dataset, exclude: readonly string[]): Dataset {
  if (!exclude.length) return dataset;
  const keep = dataset.classNames.map((n, i) => [n, i] as const).filter(([n]) => !exclude.includes(n));
  const newId = new Map(keep.map(([, old], i) => [old, i]));
  return {
    ...dataset,
    classNames: keep.map(([n]) => n),
    records: dataset.records.filter((r) => newId.has(r.label)).map((r) => ({ ...r, label: newId.get(r.label)! })),
  };
}

/** Mean and sample standard deviation (n − 1; 0 for a single value). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const n = values.length;
  if (!n) return { mean: NaN, std: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std };
}
