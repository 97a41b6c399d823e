// Finding, reading and validating recipes; applying command-line overrides.
// Precedence: schema defaults < recipe file < command-line flags. A flag left unset changes nothing.
import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { UserError } from '../errors.js';
import { recipesDir, workRoot } from '../paths.js';
import { RecipeSchema, type Recipe } from './schema.js';
import { isHttpUrl, isModelFileRef } from '../models/model-files.js';
import type { PreprocessMode } from '../data/types.js';
import { READ_LIMITS, readTextBounded } from '../util/bounded-read.js';

/** Command-line values that override a recipe (undefined = not given). */
export interface RecipeOverrides {
  dataset?: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  inputSize?: number | [number, number];
  seed?: number;
  weights?: string;
  optimizer?: string;
  weightDecay?: number;
  headLrMultiplier?: number;
  /** A preset name or explicit mean/std (see parsePreprocessMode). */
  preprocessing?: PreprocessMode;
}

/** Where each override goes in the recipe, and the flag that sets it (for error messages). */
const OVERRIDE_PATHS: Record<keyof RecipeOverrides, { path: string[]; flag: string }> = {
  dataset: { path: ['data', 'dataset'], flag: '--dataset' },
  epochs: { path: ['epochs'], flag: '--epochs' },
  batchSize: { path: ['batchSize'], flag: '--batch-size' },
  lr: { path: ['lr'], flag: '--lr' },
  inputSize: { path: ['data', 'inputSize'], flag: '--input-size' },
  seed: { path: ['seed'], flag: '--seed' },
  weights: { path: ['model', 'weights'], flag: '--weights' },
  optimizer: { path: ['optimizer', 'type'], flag: '--optimizer' },
  weightDecay: { path: ['weightDecay'], flag: '--weight-decay' },
  headLrMultiplier: { path: ['headLrMultiplier'], flag: '--head-lr-multiplier' },
  preprocessing: { path: ['data', 'preprocessing'], flag: '--preprocessing' },
};

function keyPath(p: readonly PropertyKey[]): string {
  let s = '';
  for (const k of p) s += typeof k === 'number' ? `[${k}]` : s ? `.${String(k)}` : String(k);
  return s || '(top level)';
}

function valueAt(obj: unknown, p: readonly PropertyKey[]): unknown {
  let v = obj as Record<PropertyKey, unknown> | undefined;
  for (const k of p) v = v && typeof v === 'object' ? (v[k] as Record<PropertyKey, unknown>) : undefined;
  return v;
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return (s.length > 60 ? s.slice(0, 57) + '...' : s) + ` (${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v})`;
}

/** One line for the first problem zod found. */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => keyPath([...issue.path, k]));
    return `unknown key${keys.length > 1 ? 's' : ''} '${keys.join("', '")}'`;
  }
  const where = `key '${keyPath(issue.path)}'`;
  const got = valueAt(input, issue.path);
  if (got === undefined && issue.code === 'invalid_type') return `missing ${where} (${issue.message.replace(/^Invalid input: /, '').replace(/, received undefined$/, '')})`;
  return `${where} should be ${expectedText(issue)}; got ${show(got)}`;
}

const TYPE_WORDS: Record<string, string> = { number: 'a number', int: 'an integer', string: 'a string', boolean: 'true or false',
  array: 'a list', object: 'an object', tuple: 'a list', record: 'an object' };

function expectedText(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return TYPE_WORDS[issue.expected] ?? issue.expected;
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
    case 'too_big': {
      const op = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
      const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      if (issue.origin === 'array') return `a list with ${op} ${bound} items`;
      if (issue.origin === 'string') return issue.code === 'too_small' && Number(bound) === 1 ? 'a non-empty string' : `a string of ${op} ${bound} characters`;
      return `a number ${op} ${bound}`;
    }
    default:
      return issue.message.replace(/^Invalid input: /, '').replace(/, received .*$/, '').replace(/^expected /, '');
  }
}

/** Validates a parsed recipe object; `where` names the file (or "command line") in errors. */
export function parseRecipe(input: unknown, where: string, name?: string): Recipe {
  const res = RecipeSchema.safeParse(input);
  if (!res.success) throw new UserError(`recipe ${where}: ${describeIssue(res.error.issues[0], input)}`);
  return { ...res.data, name: name ?? res.data.name };
}

/** The file a recipe reference names: a path to a .json file, or a name in recipes/. */
export function recipePath(ref: string, dir = recipesDir): string {
  if (ref.endsWith('.json') || ref.includes('/') || ref.includes(path.sep)) {
    const file = path.resolve(ref);
    if (!fs.existsSync(file)) throw new UserError(`recipe file ${file} does not exist`);
    return file;
  }
  const file = path.join(dir, `${ref}.json`);
  if (!fs.existsSync(file)) {
    const known = listRecipeNames(dir);
    throw new UserError(`unknown recipe '${ref}': expected one of ${known.join(', ') || '(none)'} or a path to a .json recipe`);
  }
  return file;
}

export function listRecipeNames(dir = recipesDir): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** Reads the raw JSON of a recipe file (a JSON syntax error is one line naming the file). */
export function readRecipeJson(file: string): unknown {
  const text = readTextBounded(file, 'recipe', READ_LIMITS.json);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`recipe ${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

/** The `kind` of a parsed recipe file ('train' when absent). */
export function recipeKind(raw: unknown): string {
  const k = raw && typeof raw === 'object' ? (raw as { kind?: unknown }).kind : undefined;
  return typeof k === 'string' ? k : 'train';
}

/** Loads and validates a training recipe file (no overrides). The name is the file name without .json. */
export function loadRecipeFile(file: string): Recipe {
  const raw = readRecipeJson(file);
  const kind = recipeKind(raw);
  if (kind !== 'train') throw new UserError(`recipe ${file} is a '${kind}' recipe, not a training recipe (gapcam recipes lists them)`);
  const recipe = parseRecipe(raw, file, path.basename(file, '.json'));
  return resolveRecipePaths(recipe, path.dirname(file) === recipesDir ? workRoot() : path.dirname(file));
}

/** Relative weight and model-file paths in a recipe are resolved against `base` (the work root, paths.ts, for
 *  shipped recipes; the recipe's folder otherwise). */
function resolveRecipePaths(recipe: Recipe, base: string): Recipe {
  const w = recipe.model.weights;
  const b = recipe.model.backbone;
  const resolve = (p: string) => (isHttpUrl(p) || path.isAbsolute(p) ? p : path.resolve(base, p));
  return {
    ...recipe,
    model: {
      ...recipe.model,
      weights: w === 'imagenet' || w === 'none' ? w : resolve(w),
      backbone: isModelFileRef(b) ? resolve(b) : b,
    },
  };
}


/** Applies the command-line overrides that were given, and validates the result; a bad value names the flag. */
export function applyOverrides(recipe: Recipe, overrides: RecipeOverrides): Recipe {
  const merged = structuredClone(recipe) as Record<string, unknown>;
  const given: (keyof RecipeOverrides)[] = [];
  for (const key of Object.keys(OVERRIDE_PATHS) as (keyof RecipeOverrides)[]) {
    let value = overrides[key];
    if (value === undefined) continue;
    if (key === 'weights' && typeof value === 'string' && !['imagenet', 'none'].includes(value) && !/^https?:\/\//.test(value)) {
      value = path.resolve(value); // a path on the command line is relative to the current folder
    }
    given.push(key);
    const p = OVERRIDE_PATHS[key].path;
    let obj = merged;
    for (const k of p.slice(0, -1)) obj = obj[k] as Record<string, unknown>;
    obj[p[p.length - 1]] = value;
  }
  const res = RecipeSchema.safeParse(merged);
  if (!res.success) {
    const issue = res.error.issues[0];
    const flag = given.find((k) => OVERRIDE_PATHS[k].path.join('.') === issue.path.slice(0, OVERRIDE_PATHS[k].path.length).join('.'));
    const what = flag ? OVERRIDE_PATHS[flag].flag : 'command line';
    throw new UserError(`${what}: ${describeIssue(issue, merged)}`);
  }
  return { ...res.data, name: recipe.name };
}

/** Loads a recipe by name or path and applies the command-line overrides. */
export function loadRecipe(ref: string, overrides: RecipeOverrides = {}, dir = recipesDir): Recipe {
  return applyOverrides(loadRecipeFile(recipePath(ref, dir)), overrides);
}

export interface RecipeListing {
  name: string;
  file: string;
  /** 'train', or another kind sharing recipes/ (listed, not loaded here). */
  kind: string;
  /** A training recipe, resolved. */
  recipe?: Recipe;
  /** Another kind's description. */
  description?: string;
  /** Why the file does not load. */
  error?: string;
}

/** Every recipe in `dir`, loaded (a broken one is listed with its error). */
export function listRecipes(dir = recipesDir): RecipeListing[] {
  return listRecipeNames(dir).map((name) => {
    const file = path.join(dir, `${name}.json`);
    let kind = 'train';
    try {
      const raw = readRecipeJson(file);
      kind = recipeKind(raw);
      if (kind !== 'train') {
        const d = (raw as { description?: unknown }).description;
        return { name, file, kind, description: typeof d === 'string' ? d : '' };
      }
      return { name, file, kind, recipe: loadRecipeFile(file) };
    } catch (err) {
      return { name, file, kind, error: (err as Error).message };
    }
  });
}

/** One line describing a recipe (for `gapcam recipes`). */
export function summarizeRecipe(r: Recipe): string {
  const [h, w] = typeof r.data.inputSize === 'number' ? [r.data.inputSize, r.data.inputSize] : r.data.inputSize;
  const weights = ['imagenet', 'none'].includes(r.model.weights) ? r.model.weights : path.relative(workRoot(), r.model.weights) || r.model.weights;
  const backbone = isModelFileRef(r.model.backbone) && !isHttpUrl(r.model.backbone) ? path.relative(workRoot(), r.model.backbone) : r.model.backbone;
  const opt = r.optimizer.type === 'sgd' ? `sgd${r.optimizer.momentum ? ` m=${r.optimizer.momentum}` : ''}` : 'adam';
  return `${backbone} (${weights}) cut ${r.model.cutAt ?? 'default'} + conv ${r.model.head.kernelSize}×${r.model.head.kernelSize}/${r.model.head.convFilters} + GAP, ${h}×${w}, ` +
    `${opt} lr ${r.lr} ${r.schedule.type}, ${r.epochs} epochs × batch ${r.batchSize}, dataset ${r.data.dataset}`;
}
