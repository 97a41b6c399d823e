// gapcam cam: class activation maps (CAM and the Grad-CAM family) for images, a folder or a dataset split —
// overlays at the original size, top-k strips, .npy maps, an index.html gallery and faithfulness metrics.
import fs from 'node:fs';
import type { GapcamCommand, Args } from './common.js';
import { startCommandEngine, dataRootOf, checkModelRef, shardOf, withOutOption, withShardOptions, type OutOption } from './common.js';
import type { ShardArgs } from '../shard/spec.js';
import type { NpyMode } from '../cam/service.js';
import type { MethodName } from '../cam/registry.js';
import { COLORMAP_NAMES, parseColormap } from '../render/colormap.js';
import { METHOD_DESCRIPTIONS, METHOD_NAMES } from './choices.js';
import { didYouMean } from '../util/did-you-mean.js';
import { DEFAULT_CAM_BOX_FRACTION } from '../eval/localization.js';
import type { Split } from '../data/types.js';
import { UserError } from '../errors.js';

interface CamArgs extends OutOption {
  model: string;
  images?: string;
  dataset?: string;
  split: string;
  method: string[];
  class: string[];
  layer?: string;
  relu?: boolean;
  colormap: string;
  opacity: number;
  boxes: boolean;
  strip?: boolean;
  npy?: string;
  metrics: boolean;
  metricSteps: number;
  batchSize: number;
  limit?: number;
  preprocessing?: string;
  classMap?: string;
  camThreshold: number;
  force: boolean;
  overlaySize: number;
}

export const camCommand: GapcamCommand = {
  command: 'cam <model> [images]',
  describe: 'Class activation maps (CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Layer-CAM, Score-CAM): overlays, strips, .npy, gallery, faithfulness',
  builder: (y) =>
    withOutOption(withShardOptions(y), 'output folder for the overlays, strips, gallery and cam.json (written into, never removed)', true)
      .positional('model', { type: 'string', describe: 'model folder, checkpoint run (best/, else last/), run name, URL or backbone name', demandOption: true })
      .positional('images', { type: 'string', describe: 'an image file or a folder of images (or use --dataset)' })
      .option('dataset', { type: 'string', describe: 'dataset name (digits-loc, cub200, wild2), folder or CSV, instead of images' })
      .option('split', { type: 'string', choices: ['test', 'train', 'val'], default: 'test', describe: 'dataset split' })
      .option('method', { type: 'string', array: true, default: [] as string[], describe: `one or more of ${METHOD_NAMES.join(', ')} (default: cam for CAM-ready models, else gradcam)` })
      .option('class', { type: 'string', array: true, default: ['top1'], describe: 'classes to map: top1, top5, topN, gt, a class id or name (several allowed)' })
      .option('layer', { type: 'string', describe: 'target layer of gradient/score methods (default: the last layer with a 4-D output)' })
      .option('relu', { type: 'boolean', describe: 'ReLU on the weighted sum (default: off for cam, on for the others); --no-relu to turn off' })
      .option('colormap', { type: 'string', choices: [...COLORMAP_NAMES], default: 'jet', describe: 'heat-map colours' })
      .option('opacity', { type: 'number', default: 0.5, describe: 'heat-map weight in the overlay, 0..1' })
      .option('boxes', { type: 'boolean', default: true, describe: 'draw the CAM box (green) and ground-truth boxes (red); --no-boxes to turn off' })
      .option('strip', { type: 'boolean', describe: 'write a strip of the requested classes per image (default: when several classes are requested)' })
      .option('npy', { type: 'string', describe: "write maps as float32 .npy: 'normalized' (default; [0,1] at input size) or 'raw' (layer resolution)" })
      .option('metrics', { type: 'boolean', default: false, describe: 'faithfulness per method: average drop/increase in confidence, deletion/insertion AUC' })
      .option('metric-steps', { type: 'number', default: 32, describe: 'deletion/insertion steps' })
      .option('cam-threshold', { type: 'number', default: DEFAULT_CAM_BOX_FRACTION, describe: "CAM box: keep pixels ≥ this fraction of the map's max (paper rule)" })
      .option('batch-size', { type: 'number', default: 8, describe: 'images per forward pass' })
      .option('limit', { type: 'number', describe: 'only the first N images' })
      .option('preprocessing', { type: 'string', describe: "input preprocessing for models without meta.json: caffe, torch, tf, unit, or 'mean=R,G,B std=R,G,B [order=rgb|bgr] [range=255|1]' (default: the architecture's, else unit)" })
      .option('class-map', { type: 'string', describe: 'datasetClass=modelClass,… for --class gt when the model has other class names' })
      .option('overlay-size', { type: 'number', default: 2048, describe: 'longest side of the originals, overlays and strips written; larger images are shrunk while decoding, and their CAM boxes and IoU computed at that size (reported in original pixels)' })
      .option('force', { type: 'boolean', default: false, describe: 'write into an --out folder that holds a previous cam result (its files are replaced one by one; other files are never touched)' })
      .example('$0 cam ../shared/models/darknet-tiny photo.jpg --class top5 --out /tmp/cam', 'CAMs of the 5 best classes, a strip and a gallery')
      .example('$0 cam ../shared/models/darknet-tiny --dataset kangaroo --data-root ../shared/datasets --class wallaby --out /tmp/k', 'a dataset with GT boxes: IoU per image, sortable gallery')
      .example('$0 cam my-run photos/ --method cam gradcam scorecam --metrics --out /tmp/cmp', 'compare methods: overlays side by side and faithfulness metrics')
      .example('$0 cam ../shared/models/darknet-tiny photo.jpg --method gradcam --layer leaky_re_lu_13 --colormap viridis --npy raw --out /tmp/g', 'Grad-CAM at an earlier layer, raw maps as .npy')
      .example('$0 cam my-run --dataset cub200 --shard 3/10 --out runs/cams && gapcam merge runs/cams', 'shard 3 of 10 into runs/cams/shard-3-of-10/; the merge writes one gallery over all shards')
      .epilog('Methods:\n' + METHOD_NAMES.map((m) => `  ${m.padEnd(10)} ${METHOD_DESCRIPTIONS[m]}`).join('\n')),
  handler: async (argv) => {
    const args = argv as Args<CamArgs & ShardArgs>;
    const shard = shardOf(args);
    const methods = args.method.flatMap((m) => m.split(',')).map((m) => m.trim().toLowerCase()).filter(Boolean);
    for (const m of methods) if (!(METHOD_NAMES as readonly string[]).includes(m)) throw new UserError(`--method: expected one of ${METHOD_NAMES.join(', ')}; got '${m}'${didYouMean(m, METHOD_NAMES)}`);
    if (!(args.opacity >= 0 && args.opacity <= 1)) throw new UserError(`--opacity: expected a number in [0, 1], found ${args.opacity}`);
    if (!(args.camThreshold >= 0 && args.camThreshold <= 1)) throw new UserError(`--cam-threshold: expected a fraction in [0, 1], found ${args.camThreshold}`);
    if (!Number.isInteger(args.batchSize) || args.batchSize < 1) throw new UserError(`--batch-size: expected a positive integer, found ${args.batchSize}`);
    if (!Number.isInteger(args.metricSteps) || args.metricSteps < 1) throw new UserError(`--metric-steps: expected a positive integer, found ${args.metricSteps}`);
    let npy: NpyMode | undefined;
    if (args.npy !== undefined) {
      const v = args.npy === '' ? 'normalized' : args.npy;
      if (v !== 'normalized' && v !== 'raw') throw new UserError(`--npy: expected 'normalized' or 'raw', got '${args.npy}'`);
      npy = v;
    }
    await checkModelRef(args.model);
    // Named image files are checked before the engine starts: a typo or an unreadable file fails at once, in one line.
    if (args.images !== undefined) {
      if (!fs.existsSync(args.images)) throw new UserError(`image or folder not found: ${args.images}`);
      if (fs.statSync(args.images).isFile()) {
        const { checkDecodes } = await import('../data/image.js');
        await checkDecodes(args.images);
      }
    }
    const [{ runCam }, { parseClassMap }, { parsePreprocessMode }] = await Promise.all([
      import('../cam/service.js'), import('../eval/evaluate.js'), import('../data/preprocess-modes.js'),
    ]);
    await startCommandEngine(args, shard);
    let last = 0;
    const summary = await runCam({
      model: args.model,
      images: args.images,
      dataset: args.dataset,
      split: args.split as Split,
      dataRoot: dataRootOf(args),
      methods: methods as MethodName[],
      classes: args.class,
      layer: args.layer,
      relu: args.relu,
      colormap: parseColormap(args.colormap),
      opacity: args.opacity,
      boxes: args.boxes,
      strip: args.strip,
      npy,
      metrics: args.metrics,
      metricSteps: args.metricSteps,
      boxThreshold: args.camThreshold,
      batchSize: args.batchSize,
      limit: args.limit,
      preprocessing: args.preprocessing ? parsePreprocessMode(args.preprocessing) : undefined,
      classMap: parseClassMap(args.classMap),
      out: args.out as string,
      shard,
      force: args.force,
      overlaySize: args.overlaySize,
      onNote: (line) => process.stderr.write(line + '\n'),
      onProgress: (done, total) => {
        const now = Date.now();
        if (process.stderr.isTTY && (now - last > 250 || done === total)) {
          last = now;
          process.stderr.write(`\rcam ${done}/${total}${done === total ? '\n' : ''}`);
        }
      },
    });
    const lines = [`${summary.images} image${summary.images === 1 ? '' : 's'} in ${summary.seconds.toFixed(1)} s` + (summary.skipped.length ? `, ${summary.skipped.length} skipped (unreadable)` : '')];
    for (const m of summary.methods) lines.push(`  ${m.name}: layer ${m.layer} (${m.layerChoice})`);
    if (summary.meanIou) {
      for (const [name, v] of Object.entries(summary.meanIou)) lines.push(`  ${name}: mean IoU ${v.toFixed(3)}, IoU ≥ 0.5 on ${(100 * (summary.locAccuracy?.[name] ?? 0)).toFixed(1)} %`);
    }
    if (summary.metrics) {
      lines.push('  faithfulness (avg drop ↓, increase ↑, deletion AUC ↓, insertion AUC ↑):');
      for (const [name, r] of Object.entries(summary.metrics)) {
        lines.push(`    ${name.padEnd(10)} ${r.averageDrop.toFixed(2).padStart(7)} %  ${r.increaseInConfidence.toFixed(1).padStart(5)} %  ${r.deletionAuc.toFixed(4)}  ${r.insertionAuc.toFixed(4)}`);
      }
    }
    lines.push(`gallery: ${summary.gallery}`);
    if (shard) lines.push(`shard ${shard.index} of ${shard.count} written to ${summary.out}; once every shard is done: gapcam merge ${args.out}`);
    process.stdout.write(lines.join('\n') + '\n');
  },
};
