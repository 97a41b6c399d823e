// Which images select the model: the validation split scored after every epoch picks the best checkpoint, and it
// must never be the test split the final numbers are measured on (Choe et al., "Evaluating Weakly Supervised Object
// Localization Methods Right", CVPR 2020: selecting on test inflates WSOL results). A dataset without a 'val' split
// gets one carved out of its training split (seeded, stratified); the carved ids are recorded in run.json, so the
// run says exactly which images selected it and a resumed run reuses them.
import type { Dataset, ImageRecord } from '../data/types.js';
import { carveValidation } from '../data/split.js';
import { UserError } from '../errors.js';
import type { Recipe } from '../recipes/schema.js';

/** What run.json records about model selection. */
export interface ValidationRecord {
  /** The split that selected the best checkpoint ('none': lowest training loss). */
  split: 'val' | 'test' | 'none';
  /** 'dataset': the dataset's own val split; 'carved': held out of its train split (ids below). */
  source: 'dataset' | 'carved' | 'test' | 'none';
  images: number;
  /** Carved splits: how, and which images. */
  fraction?: number;
  perClass?: number | null;
  seed?: number;
  ids?: string[];
}

export interface ResolvedSplits {
  train: ImageRecord[];
  val: ImageRecord[];
  validation: ValidationRecord;
}

/** The first line of every report of a run that selected its checkpoint on the test split. */
export const SELECT_ON_TEST_NOTICE = 'WARNING: this model was selected on the TEST split (--select-on-test); its test numbers are optimistic and not comparable to published ones.';

/** The notice a run's reports start with, if any. */
export function selectionNotice(recipe: Pick<Recipe, 'data'>): string | undefined {
  return recipe.data.valSplit === 'test' ? SELECT_ON_TEST_NOTICE : undefined;
}

/** Refuses selection on the test split unless the user said they know (--select-on-test). */
export function checkSelection(recipe: Pick<Recipe, 'data'>, selectOnTest: boolean): void {
  if (recipe.data.valSplit === 'test' && !selectOnTest) {
    throw new UserError("recipe data.valSplit: 'test' selects the checkpoint on the test split, which inflates every test number; use 'val' (carved from train when the dataset has none), or pass --select-on-test to do it anyway");
  }
}

/** How the run's selection is described next to its numbers ("val (10 % of train, carved)", …). */
export function describeSelection(v: ValidationRecord): string {
  switch (v.source) {
    case 'dataset':
      return `val split (${v.images} images)`;
    case 'carved':
      return `val carved from train (${v.images} images, ${v.perClass ? `${v.perClass} per class` : `${Math.round((v.fraction ?? 0) * 100)} % per class`}, seed ${v.seed})`;
    case 'test':
      return `TEST split (--select-on-test, ${v.images} images)`;
    case 'none':
      return 'no validation (lowest training loss)';
  }
}

/**
 * The training and validation records of a run. `recorded` (run.json of a resumed run) wins over carving again, so a
 * resumed run validates on exactly the images it started with.
 */
export function resolveSplits(dataset: Dataset, recipe: Recipe, o: { selectOnTest?: boolean; recorded?: ValidationRecord } = {}): ResolvedSplits {
  checkSelection(recipe, o.selectOnTest ?? false);
  const which = recipe.data.trainSplit;
  const allTrain = dataset.records.filter((r) => r.split === which);
  if (allTrain.length === 0) throw new UserError(`dataset '${dataset.name}' (${dataset.root}) has no ${which} images to train on`);
  const v = recipe.data.valSplit;
  if (v === 'none') return { train: allTrain, val: [], validation: { split: 'none', source: 'none', images: 0 } };
  if (v === 'test') {
    const val = dataset.records.filter((r) => r.split === 'test');
    return { train: allTrain, val, validation: { split: 'test', source: 'test', images: val.length } };
  }
  const own = dataset.records.filter((r) => r.split === 'val');
  if (own.length > 0 && which !== 'val' && o.recorded?.source !== 'carved') {
    return { train: allTrain, val: own, validation: { split: 'val', source: 'dataset', images: own.length } };
  }
  if (which === 'val') throw new UserError("recipe data.trainSplit 'val' with valSplit 'val': train and select on different splits");
  const c = recipe.data.valCarve;
  let ids: string[];
  if (o.recorded?.source === 'carved' && o.recorded.ids) {
    ids = o.recorded.ids;
    const known = new Set(allTrain.map((r) => r.id));
    const gone = ids.filter((id) => !known.has(id));
    if (gone.length) throw new UserError(`run.json: ${gone.length} validation image(s) recorded for this run are no longer in the dataset's ${which} split (first: ${gone[0]})`);
  } else {
    ids = carveValidation(allTrain, dataset.classNames, { fraction: c.fraction, perClass: c.perClass ?? undefined, seed: c.seed });
  }
  if (ids.length === 0) throw new UserError(`dataset '${dataset.name}': too few training images to carve a validation split (${allTrain.length}); set data.valSplit to 'none'`);
  const held = new Set(ids);
  const byId = new Map(allTrain.map((r) => [r.id, r]));
  return {
    train: allTrain.filter((r) => !held.has(r.id)),
    val: ids.map((id) => byId.get(id)!),
    validation: { split: 'val', source: 'carved', images: ids.length, fraction: c.fraction, perClass: c.perClass, seed: c.seed, ids },
  };
}
