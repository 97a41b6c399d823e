// A transfer experiment (the CAM paper's Table 5 as data): feature sources (a checkpoint, a layer, a crop) × target
// datasets (each with its protocol: training images per class, test images per class, number of random splits),
// a linear SVM per (source, dataset, split). Kept in recipes/transfer-*.json; every field but the lists has a
// default; relative paths are resolved against the project root.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { CROP_MODES, DEFAULT_CAM_THRESHOLD, DEFAULT_LAYER } from '../features/extract.js';
import { SCALE_MODES } from '../svm/scale.js';
import { recipesDir, workRoot } from '../paths.js';
import { UserError } from '../errors.js';
import { READ_LIMITS, readTextBounded } from '../util/bounded-read.js';

const positiveInt = z.number().int().positive();

export const SourceSchema = z.strictObject({
  /** Row label of the table. */
  name: z.string().min(1),
  /** Model folder, checkpoint run folder or run name (as for every gapcam command). */
  checkpoint: z.string().min(1),
  /** 'gap' (default) or a layer name. */
  layer: z.string().min(1).default(DEFAULT_LAYER),
  crop: z.enum(CROP_MODES).default('full'),
  camThreshold: z.number().gt(0).lt(1).default(DEFAULT_CAM_THRESHOLD),
  /** Shown when the checkpoint is missing: how to make it. */
  hint: z.string().optional(),
});

export const DatasetSchema = z
  .strictObject({
    /** Column label of the table. */
    name: z.string().min(1),
    /** A dataset name (wild2, digits-loc, cub200), a folder or CSV path (relative to the project root), or a folder
     *  under the data root. Default: `name`. */
    dataset: z.string().min(1).optional(),
    /** Data root for this dataset (relative to the project root); default: the command's --data-root. */
    dataRoot: z.string().min(1).optional(),
    /** 'random': per split, trainPerClass random images of each class train, testPerClass (default: all the rest)
     *  test. 'dataset': the dataset's own train/test split (one split). */
    protocol: z.enum(['random', 'dataset']).default('random'),
    trainPerClass: positiveInt.optional(),
    testPerClass: positiveInt.optional(),
    /** Number of random splits (default: the experiment's `splits`). */
    splits: positiveInt.optional(),
    /** Only this many images per class (a seeded sample) are read at all: a cap on extraction time. */
    poolPerClass: positiveInt.optional(),
    /** Class names left out (e.g. Caltech-101's BACKGROUND_Google). */
    excludeClasses: z.array(z.string()).default([]),
    /** Shown when the dataset is missing: where it comes from and where to put it. */
    where: z.string().optional(),
  })
  .refine((d) => d.protocol === 'dataset' || d.trainPerClass !== undefined, { message: "trainPerClass is required when protocol is 'random'", path: ['trainPerClass'] });

export const ExperimentSchema = z.strictObject({
  kind: z.literal('transfer'),
  description: z.string().optional(),
  sources: z.array(SourceSchema).min(1),
  datasets: z.array(DatasetSchema).min(1),
  /** Default number of random splits per dataset. */
  splits: positiveInt.default(5),
  seed: z.union([z.number().int(), z.string()]).default(0),
  /** The number in the table: overall accuracy or mean per-class accuracy (both are saved). */
  metric: z.enum(['accuracy', 'mean-per-class']).default('accuracy'),
  svm: z
    .strictObject({
      cGrid: z.array(z.number().positive()).min(1).optional(),
      folds: z.number().int().min(2).optional(),
      scale: z.enum(SCALE_MODES).optional(),
      eps: z.number().positive().optional(),
    })
    .default({}),
  /** Leave out images that fail to decode (listed in each feature folder) instead of stopping. */
  skipBadImages: z.boolean().default(true),
  batchSize: positiveInt.default(32),
});

export type TransferSource = z.infer<typeof SourceSchema>;
export type TransferDataset = z.infer<typeof DatasetSchema>;
export type Experiment = z.infer<typeof ExperimentSchema> & { name: string; file: string };

/** The experiment file a reference names: a path, or a name in recipes/ (with or without 'transfer-'/.json). */
export function experimentPath(ref: string): string {
  const candidates = [path.resolve(ref)];
  if (!ref.includes('/') && !ref.includes(path.sep)) {
    const base = ref.endsWith('.json') ? ref : `${ref}.json`;
    candidates.push(path.join(recipesDir, base), path.join(recipesDir, `transfer-${base}`));
  }
  const found = candidates.find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
  if (!found) {
    const known = fs.existsSync(recipesDir) ? fs.readdirSync(recipesDir).filter((f) => /^transfer-.*\.json$/.test(f)) : [];
    throw new UserError(`experiment '${ref}': no such file (known in recipes/: ${known.join(', ') || 'none'})`);
  }
  return found;
}

/** Resolves a path written in an experiment file: relative paths are relative to the work root (paths.ts: GAPCAM_HOME,
 *  else the working directory), where datasets/ and checkpoints/ are. */
export function resolveProjectPath(p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(workRoot(), p);
}

/** Whether a dataset reference is a path (rather than a registered name or a folder name under the data root). */
function looksLikePath(ref: string): boolean {
  return ref.startsWith('.') || ref.includes('/') || ref.includes(path.sep) || ref.endsWith('.csv');
}

export function parseExperiment(input: unknown, file: string): Experiment {
  const res = ExperimentSchema.safeParse(input);
  if (!res.success) {
    const issue = res.error.issues[0];
    const where = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new UserError(`experiment ${file}: ${where}: ${issue.message}`);
  }
  const exp = res.data;
  const names = new Set<string>();
  for (const d of exp.datasets) {
    if (names.has(d.name)) throw new UserError(`experiment ${file}: datasets: the name '${d.name}' is used twice`);
    names.add(d.name);
  }
  names.clear();
  for (const s of exp.sources) {
    if (names.has(s.name)) throw new UserError(`experiment ${file}: sources: the name '${s.name}' is used twice`);
    names.add(s.name);
  }
  return {
    ...exp,
    sources: exp.sources.map((s) => ({ ...s, checkpoint: looksLikePath(s.checkpoint) ? resolveProjectPath(s.checkpoint) : s.checkpoint })),
    datasets: exp.datasets.map((d) => {
      const ref = d.dataset ?? d.name;
      return { ...d, dataset: looksLikePath(ref) ? resolveProjectPath(ref) : ref, dataRoot: d.dataRoot ? resolveProjectPath(d.dataRoot) : undefined };
    }),
    name: path.basename(file, '.json'),
    file,
  };
}

export function loadExperiment(ref: string): Experiment {
  const file = experimentPath(ref);
  let json: unknown;
  const text = readTextBounded(file, 'experiment', READ_LIMITS.json);
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`experiment ${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  return parseExperiment(json, file);
}
