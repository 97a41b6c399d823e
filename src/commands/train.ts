import path from 'node:path';
import type { Args, GapcamCommand } from './common.js';
import { startCommandEngine, checkpointRootOf, parseInputSize } from './common.js';
import { UserError } from '../errors.js';
import type { TrainAndEvaluateResult } from '../train/run.js';
import { interruptOnSignals, stopMessage } from '../train/signals.js';
import type { RecipeOverrides } from '../recipes/loader.js';
import { parsePreprocessMode } from '../data/preprocess-modes.js';

interface TrainArgs {
  recipe?: string;
  dataset?: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  inputSize?: string;
  weights?: string;
  optimizer?: string;
  weightDecay?: number;
  preprocessing?: string;
  resume?: string;
  runName?: string;
  checkpoints?: string;
  maxSteps?: number;
  eval: boolean;
  skipBadImages?: boolean;
  cache: boolean;
  selectOnTest: boolean;
  workers?: string;
  taskIndex?: number;
}

/** The recipe overrides given on the command line (unset flags stay undefined and change nothing). */
export function overridesOf(args: Args<TrainArgs>): RecipeOverrides {
  return {
    dataset: args.dataset, epochs: args.epochs, batchSize: args.batchSize, lr: args.lr, inputSize: parseInputSize(args.inputSize),
    weights: args.weights, optimizer: args.optimizer, weightDecay: args.weightDecay, seed: args.seed,
    preprocessing: args.preprocessing === undefined ? undefined : parsePreprocessMode(args.preprocessing),
  };
}

/** The summary printed at the end of train and demo: the run folder and the headline numbers are the last lines. */
export function printSummary(res: TrainAndEvaluateResult): void {
  const t = res.train;
  const lines: string[] = [];
  if (t.notice) lines.push(t.notice);
  if (res.evaluation) lines.push(`checkpoint ${path.basename(res.evaluation.checkpoint)}/ selected on: ${res.evaluation.selectedOn}; evaluated on: ${t.recipe.evaluation.split}`);
  if (res.evaluation?.camThreshold) lines.push(`CAM threshold τ = ${res.evaluation.camThreshold.value.toFixed(2)}, chosen by MaxBoxAcc on ${res.evaluation.camThreshold.images} validation images (train-fullsup)`);
  if (res.evaluation?.skipped) lines.push(res.evaluation.skipped);
  if (res.evaluation?.run) lines.push('', res.evaluation.run.markdown.trim(), '');
  if (res.evaluation?.cams) lines.push(`CAM images: ${res.evaluation.cams.out} (${res.evaluation.cams.images}; gallery ${res.evaluation.cams.gallery})`);
  lines.push(`report: ${path.join(t.runDir, 'report.html')}`);
  lines.push(`run folder: ${t.runDir}`);
  // t.best is best/'s own record, read from disk after training: the summary names only a model that exists.
  if (t.best) {
    const score = t.best.valAcc !== undefined ? `val top-1 ${(t.best.valAcc * 100).toFixed(1)}%` : `train loss ${(-t.best.metric).toFixed(4)}`;
    lines.push(`best checkpoint: ${t.bestDir} (epoch ${t.best.epoch}, ${score})`);
  }
  const nums: string[] = [`${t.epochsDone} epoch${t.epochsDone === 1 ? '' : 's'} in ${t.seconds.toFixed(0)} s (${t.imagesPerSec.toFixed(1)} img/s)`];
  if (t.best?.valAcc !== undefined) nums.push(`best val top-1 ${(t.best.valAcc * 100).toFixed(1)}% (epoch ${t.best.epoch})`);
  const h = res.evaluation?.headline ?? {};
  for (const k of ['top-1 accuracy', 'GT-known loc', 'top-1 loc', 'MaxBoxAccV2', 'center-baseline GT-known loc']) {
    if (h[k] !== undefined) nums.push(`${k} ${h[k].toFixed(1)}%`);
  }
  lines.push(nums.join(', '));
  console.log(lines.join('\n'));
}

export const trainCommand: GapcamCommand = {
  command: 'train [recipe]',
  describe: 'Train a recipe (GAP surgery + fine-tuning), keeping best/last checkpoints, metrics and report.html in checkpoints/<run> ' +
    '(one process per run folder; SIGINT/SIGTERM stop after the current step with a checkpoint, exit 130/143; divergence exits 2)',
  builder: (y) =>
    y
      .positional('recipe', { type: 'string', describe: 'recipe name (gapcam recipes lists them) or path to a recipe .json' })
      .option('dataset', { type: 'string', describe: "dataset (overrides the recipe's)" })
      .option('epochs', { type: 'number', describe: 'epochs (overrides the recipe)' })
      .option('batch-size', { type: 'number', describe: 'batch size (overrides the recipe)' })
      .option('lr', { type: 'number', describe: 'base learning rate (overrides the recipe)' })
      .option('input-size', { type: 'string', describe: 'input size N or HxW (overrides the recipe)' })
      .option('weights', { type: 'string', describe: 'backbone weights: imagenet, none, or a file/folder path (overrides the recipe)' })
      .option('optimizer', { choices: ['sgd', 'adam'], describe: 'optimizer (overrides the recipe)' })
      .option('weight-decay', { type: 'number', describe: 'L2 weight decay (overrides the recipe)' })
      .option('preprocessing', { type: 'string', describe: "input normalisation: caffe, torch, tf ([-1, 1]), unit, or 'mean=R,G,B std=R,G,B [order=rgb|bgr] [range=255|1]' (overrides the recipe; default the backbone's)" })
      .option('resume', { type: 'string', describe: 'continue run <name> (under --checkpoints) or a run folder from its last checkpoint' })
      .option('checkpoints', { type: 'string', describe: 'folder that holds the run folders (default checkpoints/); --out is not used by train' })
      .option('run-name', { type: 'string', describe: 'run folder name (default <recipe>-<date>-<time>)' })
      .option('max-steps', { type: 'number', describe: 'stop after this many steps (smoke tests); a checkpoint is written' })
      .option('eval', { type: 'boolean', default: true, describe: "run the recipe's final evaluation (--no-eval skips it)" })
      .option('skip-bad-images', { type: 'boolean', describe: 'leave out images that fail to decode (counted) instead of stopping' })
      .option('select-on-test', { type: 'boolean', default: false, describe: "allow a recipe whose data.valSplit is 'test' (model selection on the test split; every report says so first)" })
      .option('workers', { type: 'string', describe: 'multi-worker training: every worker\'s host:port, task 0 (the chief) first (default: TF_CONFIG)' })
      .option('task-index', { type: 'number', describe: 'with --workers: this process\'s position in the list' })
      .option('cache', { type: 'boolean', default: true, describe: 'cache decoded images in .cache/images, bounded by GAPCAM_IMAGE_CACHE_MB (GAPCAM_CACHE_DIR overrides .cache; --no-cache: decode every epoch)' })
      .example('$0 train vgg-gap-tiny', 'train the tiny recipe on the embedded digits-loc set (minutes on a CPU)')
      .example('$0 train darknet-gap --data-root ../shared/datasets', 'transfer darknet-tiny to kangaroo vs raccoon (wild2)')
      .example('$0 train vgg-gap --dataset cub200 --epochs 30', "the CAM paper's VGGnet-GAP on CUB-200-2011 (GPU)")
      .example('$0 train --resume vgg-gap-20261127-101500', 'continue an interrupted run exactly where it stopped')
      .example('$0 train vgg-gap-tiny --checkpoints /scratch/runs --run-name tiny', 'run folder /scratch/runs/tiny')
      .example('$0 train vgg-gap-tiny --epochs 1 --max-steps 5 --run-name smoke', 'a smoke test')
      .example('$0 train my-recipe.json --preprocessing tf', 'a recipe whose backbone is your own model file (e.g. "backbone": "mnv2.keras", "cutAt": "out_relu")')
      .example('$0 train vgg-gap-tiny --run-name dp --workers 10.0.0.1:2222,10.0.0.2:2222 --task-index 0', 'worker 0 of 2 (run the same with --task-index 1 on the other machine; README, Distributed training)'),
  handler: async (argv) => {
    const args = argv as Args<TrainArgs>;
    if (!args.recipe && !args.resume) throw new UserError('train: name a recipe (gapcam recipes lists them) or give --resume <run>');
    if (args.maxSteps !== undefined && !(Number.isInteger(args.maxSteps) && args.maxSteps > 0)) {
      throw new UserError(`--max-steps: expected a positive integer; got ${args.maxSteps}`);
    }
    const checkpointRoot = checkpointRootOf(args);
    const overrides = overridesOf(args);
    // The recipe and the flags that override it are checked before the engine starts (a resumed run's recipe is
    // read from its folder by the service).
    if (!args.resume) {
      const { checkSelection } = await import('../train/selection.js');
      checkSelection((await import('../recipes/loader.js')).loadRecipe(args.recipe!, overrides), args.selectOnTest);
    }
    const cluster = (await import('../distributed/cluster.js')).resolveCluster(args);
    const [{ trainAndEvaluate }, { consoleProgress, describeEngineShort }] = await Promise.all([import('../train/run.js'), import('../train/progress.js')]);
    const engine = await startCommandEngine(args, undefined, cluster);
    const parallel = cluster && new (await import('../distributed/data-parallel.js')).DataParallel((await import('../distributed/collective.js')).collectiveGroup()!);
    const progress = consoleProgress();
    const intr = interruptOnSignals((sig) => progress.log(stopMessage(sig)));
    let res: TrainAndEvaluateResult;
    try {
      res = await trainAndEvaluate({
        recipe: args.recipe, overrides, dataRoot: args.dataRoot, checkpointRoot, runName: args.runName,
        resume: args.resume, maxSteps: args.maxSteps, signal: intr.signal, progress, engine: describeEngineShort(engine),
        noEvaluation: !args.eval, cacheDir: args.cache ? undefined : null, skipBadImages: args.skipBadImages, selectOnTest: args.selectOnTest,
        parallel,
      });
    } finally {
      intr.dispose();
    }
    const t = res.train;
    if (parallel && !parallel.isChief) {
      console.log(`worker ${parallel.group.rank} of ${parallel.workers}: ${t.status} at step ${t.globalStep}; the chief (worker 0) wrote ${t.runDir}`);
      return;
    }
    if (t.status === 'interrupted') {
      console.log(`interrupted at step ${t.globalStep}; checkpoint ${t.lastDir}\nresume with: gapcam train --resume ${t.runName}\nrun folder: ${t.runDir}`);
      process.exitCode = intr.exitCode();
      return;
    }
    if (t.status === 'max-steps') {
      console.log(`stopped after --max-steps ${args.maxSteps} (global step ${t.globalStep}); checkpoint ${t.lastDir}\nrun folder: ${t.runDir}`);
      return;
    }
    printSummary(res);
  },
};
