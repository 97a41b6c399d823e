// Fixed seeded train/test splits for layouts that have none, and the split() helper.
import type { Dataset, ImageRecord, Split } from './types.js';
import { naturalCompare } from './util.js';
import { makeRng, shuffleInPlace } from '../util/random.js';
import { UserError } from '../errors.js';
import { DEFAULT_SPLIT_SEED, DEFAULT_TEST_FRACTION } from './adapters/types.js';

/**
 * Assigns `split` to records per class: each class's records are sorted by id, shuffled with a generator seeded by
 * `seed` and the class name, and the first round(n × testFraction) become 'test' (at least one when n ≥ 2), the rest
 * 'train'. The result depends only on the ids in each class, the seed and the fraction.
 */
export function assignSeededSplit(records: ImageRecord[], classNames: string[], testFraction: number, seed: string, perClass?: { train?: number; test?: number }): ImageRecord[] {
  if (!(testFraction >= 0 && testFraction < 1)) throw new UserError(`test fraction must be in [0, 1), found ${testFraction}`);
  const dropped = new Set<ImageRecord>();
  const byClass = new Map<number, ImageRecord[]>();
  for (const r of records) {
    const list = byClass.get(r.label) ?? [];
    list.push(r);
    byClass.set(r.label, list);
  }
  for (const [label, list] of byClass) {
    list.sort((a, b) => naturalCompare(a.id, b.id));
    shuffleInPlace(list, makeRng(`${seed}/${classNames[label]}`));
    if (perClass?.train !== undefined) {
      // Fixed count per class: the first `train` images of the seeded order train, the next (up to `test`) test.
      const nTrain = perClass.train;
      const nTest = perClass.test ?? Infinity;
      list.forEach((r, i) => {
        if (i < nTrain) r.split = 'train';
        else if (i - nTrain < nTest) r.split = 'test';
        else dropped.add(r);
      });
      continue;
    }
    let nTest = Math.round(list.length * testFraction);
    if (testFraction > 0 && nTest === 0 && list.length >= 2) nTest = 1;
    list.forEach((r, i) => (r.split = i < nTest ? 'test' : 'train'));
  }
  return dropped.size ? records.filter((r) => !dropped.has(r)) : records;
}

/** The split options of a layout without its own split, as assignSeededSplit's arguments. */
export function seededSplitOf(options: { testFraction?: number; splitSeed?: string; trainPerClass?: number; testPerClass?: number }): [number, string, { train?: number; test?: number }] {
  return [options.testFraction ?? DEFAULT_TEST_FRACTION, options.splitSeed ?? DEFAULT_SPLIT_SEED, { train: options.trainPerClass, test: options.testPerClass }];
}

/** The records of one split; an empty split is a UserError naming the dataset. */
export function split(dataset: Dataset, which: Split): ImageRecord[] {
  const out = dataset.records.filter((r) => r.split === which);
  if (out.length === 0) {
    const counts = splitCounts(dataset);
    const have = Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ') || 'no images at all';
    throw new UserError(`dataset '${dataset.name}' (${dataset.root}) has no ${which} images (found: ${have})`);
  }
  return out;
}

export function splitCounts(dataset: Pick<Dataset, 'records'>): Partial<Record<Split, number>> {
  const counts: Partial<Record<Split, number>> = {};
  for (const r of dataset.records) counts[r.split] = (counts[r.split] ?? 0) + 1;
  return counts;
}

export interface CarveOptions {
  /** Fraction of each class's training images held out (ignored when perClass is given). */
  fraction: number;
  /** Exactly this many images per class (fewer when a class has fewer than perClass + 1 images: one always trains). */
  perClass?: number;
  /** Seeds the per-class order (independent of the training seed, so that --seed does not move the split). */
  seed: number;
}

/**
 * A validation set carved out of training records: per class, records sorted by id, shuffled with a generator
 * seeded by `carve/<seed>/<class name>`, and the first round(n × fraction) (at least 1 when n ≥ 2; or exactly
 * perClass) held out. Stratified, and a function of the ids, the class names and the options only. Returns the ids of
 * the held-out records, in class then shuffled order.
 */
export function carveValidation(records: readonly ImageRecord[], classNames: readonly string[], o: CarveOptions): string[] {
  if (o.perClass === undefined && !(o.fraction > 0 && o.fraction < 1)) throw new UserError(`validation fraction must be in (0, 1), found ${o.fraction}`);
  const byClass = new Map<number, ImageRecord[]>();
  for (const r of records) {
    const list = byClass.get(r.label) ?? [];
    list.push(r);
    byClass.set(r.label, list);
  }
  const held: string[] = [];
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const list = byClass.get(label)!.slice().sort((a, b) => naturalCompare(a.id, b.id));
    shuffleInPlace(list, makeRng(`carve/${o.seed}/${classNames[label]}`));
    let n = o.perClass ?? Math.round(list.length * o.fraction);
    if (o.perClass === undefined && n === 0 && list.length >= 2) n = 1;
    n = Math.min(n, list.length - 1); // a class keeps at least one training image
    for (let i = 0; i < n; i++) held.push(list[i].id);
  }
  return held;
}
