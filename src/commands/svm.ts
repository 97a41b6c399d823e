import { withOutOption, type Args, type GapcamCommand, type OutOption } from './common.js';
import { DEFAULT_C_GRID, DEFAULT_FOLDS } from '../svm/cv.js';
import { SCALE_MODES, type ScaleMode } from '../svm/scale.js';
import { LIBLINEAR_DEFAULT_EPS } from '../svm/solver.js';
import { UserError } from '../errors.js';

interface SvmArgs extends OutOption {
  train: string;
  test?: string;
  trainSplit?: string;
  testSplit?: string;
  cGrid?: string;
  folds: number;
  scale: ScaleMode;
  loss: 'squared-hinge' | 'hinge';
  eps: number;
  shrinking: boolean;
}

export function parseCGrid(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!values.length || values.some((v) => !(v > 0) || !Number.isFinite(v))) {
    throw new UserError(`--c-grid: expected comma-separated positive numbers (e.g. 0.01,0.1,1,10), found '${text}'`);
  }
  return values;
}

export const svmCommand: GapcamCommand = {
  command: 'svm',
  describe: 'Linear SVM (LIBLINEAR -s 1: L2-regularised squared hinge, dual coordinate descent), one-vs-rest, on feature folders',
  builder: (y) =>
    withOutOption(y, 'output folder (default svm-<train folder>[-vs-<test folder>] beside the --train folder); see below')
      .option('train', { type: 'string', demandOption: true, describe: 'feature folder to fit on (written by gapcam features)' })
      .option('test', { type: 'string', describe: 'feature folder to score (default with --test-split: the --train folder)' })
      .option('train-split', { type: 'string', describe: "fit only on the --train rows of this split (index.csv's split column)" })
      .option('test-split', { type: 'string', describe: 'score only the --test rows of this split' })
      .option('c-grid', { type: 'string', describe: `values of C tried by cross-validation (default ${DEFAULT_C_GRID.join(',')}); one value skips CV` })
      .option('folds', { type: 'number', default: DEFAULT_FOLDS, describe: 'folds of the stratified cross-validation' })
      .option('scale', { choices: SCALE_MODES, default: 'standard' as ScaleMode, describe: 'feature scaling: train mean/std, per-row L2 norm, or none' })
      .option('loss', { choices: ['squared-hinge', 'hinge'] as const, default: 'squared-hinge' as const, describe: 'squared hinge (LIBLINEAR -s 1) or hinge (-s 3)' })
      .option('eps', { type: 'number', default: LIBLINEAR_DEFAULT_EPS, describe: 'stopping tolerance (LIBLINEAR -e)' })
      .option('shrinking', { type: 'boolean', default: true, describe: 'shrink the active set (--no-shrinking to turn off)' })
      .example('$0 svm --train runs/feat-train --test runs/feat-test', 'C by 5-fold CV, then test accuracy')
      .example('$0 svm --train runs/feat-all --train-split train --test-split test', 'one feature folder, its own train/test split')
      .example('$0 svm --train a --test b --c-grid 0.1,1,10 --scale l2 --out runs/svm', 'L2-normalised features, own grid')
      .epilogue('--out is a folder: model.json, predictions.csv, svm.json and svm.md are written into it, each replaced atomically when it holds a previous svm result; nothing else there is touched (a model.json svm did not write is refused).'),
  handler: async (argv) => {
    const args = argv as Args<SvmArgs>;
    const { runSvm } = await import('../svm/service.js');
    const { out, result, markdown } = await runSvm({
      train: args.train,
      test: args.test,
      trainSplit: args.trainSplit,
      testSplit: args.testSplit,
      out: args.out,
      cGrid: parseCGrid(args.cGrid),
      folds: args.folds,
      scale: args.scale,
      loss: args.loss,
      eps: args.eps,
      shrinking: args.shrinking,
      seed: args.seed,
    });
    process.stdout.write(markdown);
    if (!result.model.converged) process.stderr.write('gapcam: warning: the solver reached its iteration limit; try --scale l2 or a smaller C\n');
    console.log(`wrote ${out}/{model.json,${result.test ? 'predictions.csv,' : ''}svm.json,svm.md}`);
  },
};
