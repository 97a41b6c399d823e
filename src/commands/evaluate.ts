// gapcam evaluate: classification accuracy and CAM-based weakly-supervised localization (paper rule + wsolevaluation
// MaxBoxAcc / MaxBoxAccV2, with the center baseline) of a CAM-ready model on a dataset split.
import fs from 'node:fs';
import path from 'node:path';
import type { GapcamCommand, Args } from './common.js';
import { startCommandEngine, dataRootOf, checkModelRef, shardOf, withOutOption, withShardOptions, type OutOption } from './common.js';
import type { ShardArgs } from '../shard/spec.js';
import type { Split } from '../data/types.js';
import { UserError } from '../errors.js';
import { DEFAULT_CAM_BOX_FRACTION } from '../eval/localization.js';

interface EvaluateArgs extends OutOption {
  checkpoint: string;
  dataset?: string;
  split: string;
  protocol: string;
  masks?: string;
  camThreshold: number;
  boxes: string;
  flip: boolean;
  batchSize: number;
  sweepStep: number;
  thresholding: string;
  iou: number;
  ruleNormalization: string;
  centerSigma: number;
  classMap?: string;
  limit?: number;
  skipBadImages: boolean;
}

export const evaluateCommand: GapcamCommand = {
  command: 'evaluate <checkpoint>',
  describe: 'Classification and CAM localization accuracy (top-1/top-5/GT-known loc, MaxBoxAcc, MaxBoxAccV2, center baseline)',
  builder: (y) =>
    withOutOption(withShardOptions(y), 'output folder (default <run>/eval-<dataset>-<split>); see below')
      .positional('checkpoint', { type: 'string', describe: 'model folder, checkpoint run (uses best/, else last/), run name under checkpoints/, or URL', demandOption: true })
      .option('dataset', { type: 'string', describe: "dataset name (digits-loc, cub200, wild2), folder or CSV (default: the training run's own dataset and data root, from its run.json)" })
      .option('protocol', { type: 'string', choices: ['gapcam', 'wsolevaluation'], default: 'gapcam', describe: "localization geometry: gapcam's exact boxes in original pixels, or clovaai/wsolevaluation's BoxEvaluator bit for bit (resized boxes, cv2 contours, x+w boxes, [0,0,0,0] fallback)" })
      .option('masks', { type: 'string', describe: 'folder of ground-truth masks mirroring the images (<rel>.png, optional <rel>.ignore.png) for PxAP (default: <dataset root>/masks when present)' })
      .option('split', { type: 'string', choices: ['test', 'train', 'val'], default: 'test', describe: 'which split to evaluate' })
      .option('cam-threshold', { type: 'number', default: DEFAULT_CAM_BOX_FRACTION, describe: "paper rule: keep pixels ≥ this fraction of the map's max" })
      .option('boxes', { type: 'string', choices: ['largest', 'all'], default: 'largest', describe: 'boxes for top-1/top-5/GT-known loc: largest component (paper) or every component' })
      .option('flip', { type: 'boolean', default: false, describe: 'average logits and CAMs over the image and its mirror' })
      .option('batch-size', { type: 'number', default: 16, describe: 'images per forward pass' })
      .option('sweep-step', { type: 'number', default: 0.01, describe: 'τ grid step of MaxBoxAcc / MaxBoxAccV2' })
      .option('thresholding', { type: 'string', choices: ['wsol-uint8', 'float'], default: 'wsol-uint8', describe: "sweep binarisation: wsolevaluation's uint8 (u8 > ⌊τ·max⌋) or float (v ≥ τ)" })
      .option('iou', { type: 'number', default: 0.5, describe: 'IoU for top-1/top-5/GT-known loc' })
      .option('rule-normalization', { type: 'string', choices: ['max', 'minmax'], default: 'max', describe: "paper rule on the raw map (v ≥ t·max, the paper) or on the min-max normalised map" })
      .option('center-sigma', { type: 'number', default: 0.5, describe: 'σ of the center-gaussian baseline (the image spans [-1, 1])' })
      .option('class-map', { type: 'string', describe: 'datasetClass=modelClass,… when the model was trained on other classes' })
      .option('limit', { type: 'number', describe: 'evaluate only the first N images of the split' })
      .option('skip-bad-images', { type: 'boolean', default: false, describe: 'leave out missing, empty and undecodable images (listed in skipped.txt in the --out folder) instead of stopping' })
      .epilogue('--out is a folder (default: <run>/eval-<dataset>-<split>): evaluation.json, evaluation.md, per-image.csv and confusion.csv are written into it, each replaced atomically when it holds a previous evaluation; nothing else there is touched.')
      .example('$0 evaluate checkpoints/vgg-gap-cub', 'the test split of the dataset the run was trained on (run.json)')
      .example('$0 evaluate checkpoints/vgg-gap-cub --dataset cub200 --protocol wsolevaluation', "CUB test split scored exactly as wsolevaluation's BoxEvaluator (MaxBoxAccV2 and its per-IoU values)")
      .example('$0 evaluate checkpoints/darknet-gap --dataset wild2 --data-root ../shared/datasets', 'kangaroo vs raccoon photos')
      .example('$0 evaluate ../shared/models/darknet-tiny --dataset wild2 --data-root ../shared/datasets --class-map "kangaroo=wallaby,raccoon=lesser panda"', 'an ImageNet model, its nearest classes standing in')
      .example('$0 evaluate my-run --dataset digits-loc --flip --boxes all --out /tmp/eval', 'flip averaging, all components, custom folder')
      .example('$0 evaluate my-run --dataset cub200 --shard 0/4 --out runs/eval && gapcam merge runs/eval', 'shard 0 of 4 into runs/eval/shard-0-of-4/; the merge recomputes every metric from the summed counts'),
  handler: async (argv) => {
    const args = argv as Args<EvaluateArgs & ShardArgs>;
    const shard = shardOf(args);
    const check = (ok: boolean, msg: string) => { if (!ok) throw new UserError(msg); };
    check(args.camThreshold >= 0 && args.camThreshold <= 1, `--cam-threshold: expected a fraction in [0, 1], found ${args.camThreshold}`);
    check(args.iou > 0 && args.iou <= 1, `--iou: expected a number in (0, 1], found ${args.iou}`);
    check(args.centerSigma > 0, `--center-sigma: expected a positive number, found ${args.centerSigma}`);
    await checkModelRef(args.checkpoint);
    const { evaluate } = await import('../eval/evaluate.js');
    await startCommandEngine(args, shard);
    let last = 0;
    const run = await evaluate({
      checkpoint: args.checkpoint,
      dataset: args.dataset,
      masks: args.masks,
      split: args.split as Split,
      dataRoot: dataRootOf(args),
      out: args.out,
      batchSize: args.batchSize,
      limit: args.limit,
      classMap: args.classMap,
      skipBadImages: args.skipBadImages,
      settings: {
        protocol: args.protocol as 'gapcam' | 'wsolevaluation',
        camThreshold: args.camThreshold,
        boxes: args.boxes as 'largest' | 'all',
        flip: args.flip,
        sweepStep: args.sweepStep,
        thresholding: args.thresholding as 'wsol-uint8' | 'float',
        iouThreshold: args.iou,
        normalization: args.ruleNormalization as 'max' | 'minmax',
        centerSigma: args.centerSigma,
      },
      shard,
      onProgress: (done, total) => {
        const now = Date.now();
        if (process.stderr.isTTY && (now - last > 250 || done === total)) {
          last = now;
          process.stderr.write(`\revaluating ${done}/${total}${done === total ? '\n' : ''}`);
        }
      },
    });
    if (run.part && shard) {
      process.stdout.write(`shard ${shard.index} of ${shard.count}: ${run.report.metrics.images} of ${run.report.dataset.images} images evaluated\n`);
      process.stdout.write(`written: ${run.part} (part.json, per-image.csv, evaluation-part.json); once every shard is done: gapcam merge ${run.outDir}\n`);
      return;
    }
    process.stdout.write(run.markdown + '\n');
    const skipped = fs.existsSync(path.join(run.outDir, 'skipped.txt')) && args.skipBadImages ? ', skipped.txt' : '';
    process.stdout.write(`written: ${run.outDir} (evaluation.json, evaluation.md, per-image.csv, confusion.csv${skipped})\n`);
  },
};
