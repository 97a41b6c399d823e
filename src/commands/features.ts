import path from 'node:path';
import { startCommandEngine, dataRootOf, checkModelRef, shardOf, withOutOption, withShardOptions, type Args, type GapcamCommand, type OutOption } from './common.js';
import type { ShardArgs } from '../shard/spec.js';
import type { SplitChoice } from '../features/service.js';
import type { CropMode } from '../features/extract.js';
import { SPLIT_CHOICES, CROP_MODES, FEATURES_DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE, FEATURES_DEFAULT_CAM_THRESHOLD as DEFAULT_CAM_THRESHOLD } from './choices.js';
import { defaultCheckpointRoot } from '../paths.js';

interface FeaturesArgs extends OutOption {
  checkpoint: string;
  dataset?: string;
  split: SplitChoice;
  layer: string;
  crop: CropMode;
  camThreshold: number;
  batchSize: number;
  force: boolean;
  skipBadImages: boolean;
  limit?: number;
}

/** Prints "label done/total" on one refreshed stderr line when stderr is a terminal. */
export function progressPrinter(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (done, total) => {
    process.stderr.write(`\r${label} ${done}/${total}${done === total ? '\n' : ''}`);
  };
}

export const featuresCommand: GapcamCommand = {
  command: 'features <checkpoint>',
  describe: 'Extract GAP-layer features (or any layer, globally pooled) for every image: features.npy + index.csv',
  builder: (y) =>
    withOutOption(withShardOptions(y), 'output folder for features.npy, index.csv and features.json (default checkpoints/features/<model>/<dataset>-<split>-<layer>-<crop>)')
      .positional('checkpoint', { type: 'string', demandOption: true, describe: 'model folder, checkpoint run, run name or backbone' })
      .option('dataset', { type: 'string', describe: 'dataset name or path (default: digits-loc)' })
      .option('split', { choices: SPLIT_CHOICES, default: 'all' as SplitChoice, describe: 'which images' })
      .option('layer', { type: 'string', default: 'gap', describe: "'gap' (the GAP feature) or a layer name (4-D outputs are averaged over h×w)" })
      .option('crop', { choices: CROP_MODES, default: 'full' as CropMode, describe: "whole image, the model's own CAM box (top-1 class), or the ground-truth box" })
      .option('cam-threshold', { type: 'number', default: DEFAULT_CAM_THRESHOLD, describe: '--crop cam: keep CAM ≥ this fraction of its max' })
      .option('batch-size', { type: 'number', default: DEFAULT_BATCH_SIZE, describe: 'images per forward pass' })
      .option('skip-bad-images', { type: 'boolean', default: false, describe: 'leave out images that fail to decode (listed in features.json) instead of stopping' })
      .option('force', { type: 'boolean', default: false, describe: 'extract again even when --out (or the shard\'s part) holds the same features; needed to replace features of other settings in an --out folder (files written one by one, atomically; other files never touched)' })
      .option('limit', { type: 'number', describe: 'only the first N images of the split' })
      .example('$0 features ../shared/models/darknet-tiny --dataset wild2 --data-root ../shared/datasets', '128-D GAP features of darknet-tiny')
      .example('$0 features my-run --dataset cub200 --split test --crop cam --out runs/feat-cub-cam', "features of the model's CAM crops")
      .example('$0 features my-run --dataset cub200 --shard 2/8 --out runs/feat && gapcam merge runs/feat', 'shard 2 of 8 (0-based) into runs/feat/shard-2-of-8/; the merge once all 8 are done'),
  handler: async (argv) => {
    const args = argv as Args<FeaturesArgs & ShardArgs>;
    const shard = shardOf(args);
    await checkModelRef(args.checkpoint, defaultCheckpointRoot());
    const { runFeatures } = await import('../features/service.js');
    await startCommandEngine(args, shard);
    const r = await runFeatures({
      checkpoint: args.checkpoint,
      dataset: args.dataset,
      dataRoot: dataRootOf(args),
      split: args.split,
      layer: args.layer,
      crop: args.crop,
      camThreshold: args.camThreshold,
      batchSize: args.batchSize,
      force: args.force,
      skipBadImages: args.skipBadImages,
      limit: args.limit,
      shard,
      out: args.out,
      checkpointRoot: defaultCheckpointRoot(),
      onProgress: progressPrinter('features'),
    });
    const m = r.meta;
    const rel = path.relative(process.cwd(), r.dir) || '.';
    const part = shard ? `shard ${shard.index} of ${shard.count}: ` : '';
    console.log(`${part}${r.reused ? 'reused' : 'wrote'} ${rel}: ${m.count} × ${m.dimension} features (${m.source.featureLayer}${m.source.pooling === 'global-average' ? ', averaged over h×w' : ''}; crop ${m.source.crop}) of ${m.source.dataset} [${m.source.split}]`);
    if (!r.reused && m.seconds) console.log(`  ${m.seconds.toFixed(1)} s, ${m.imagesPerSecond!.toFixed(1)} images/s`);
    const fallbacks = (m.extra?.wholeImageFallbacks as number | undefined) ?? 0;
    if (fallbacks) console.log(`  ${fallbacks} image(s) used the whole image (no ${m.source.crop === 'cam' ? 'CAM box' : 'ground-truth box'})`);
    const skipped = (m.extra?.skippedImages as { path: string; reason: string }[] | undefined) ?? [];
    for (const s of skipped) console.log(`  skipped ${s.path}: ${s.reason}`);
    console.log(`  cache key ${m.cacheKey}`);
  },
};
