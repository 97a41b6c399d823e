import type { Argv } from 'yargs';
import type { Args, GapcamCommand, GlobalOptions, OutOption } from './common.js';
import { startCommandEngine, checkModelRef, parseInputSize, withOutOption } from './common.js';
import { UserError } from '../errors.js';
import type { BackboneBuildOptions } from '../models/registry.js';
import type { ExportFormat } from '../models/service.js';
import { EXPORT_FORMATS } from './choices.js';

interface BackboneArgs {
  weights?: string;
  includeTop?: boolean;
  inputSize?: string;
  checkpoints?: string;
}

/** `--input-size` as a model input shape [h, w, 3]. */
export function parseInputShape(text: string | undefined): [number, number, number] | undefined {
  const size = parseInputSize(text);
  return size && [size[0], size[1], 3];
}

function backboneOptions(args: BackboneArgs, includeTopDefault: boolean): BackboneBuildOptions {
  return {
    ...(args.weights !== undefined ? { weights: args.weights } : {}),
    includeTop: args.includeTop ?? includeTopDefault,
    ...(args.inputSize !== undefined ? { inputShape: parseInputShape(args.inputSize) } : {}),
  };
}

function withBackboneOptions<T>(y: Argv<T>): Argv<T & BackboneArgs> {
  return y
    .option('weights', { type: 'string', describe: "backbone weights: 'imagenet' (vgg16/vgg19, downloaded once to checkpoints/pretrained), a Keras .h5 file, or a tfjs model folder (darknet-tiny)" })
    .option('include-top', { type: 'boolean', describe: "backbone: keep the classifier top (flatten/fc1/fc2/predictions)" })
    .option('input-size', { type: 'string', describe: 'backbone input size: 224 or HxW' })
    .option('checkpoints', { type: 'string', describe: 'folder of checkpoint runs (default checkpoints/)' }) as unknown as Argv<T & BackboneArgs>;
}

const MODEL_REF = 'a model folder (model.json), a checkpoint run (uses best/, else last/), an http(s) URL, or a backbone name (vgg16, vgg19, vgg-tiny, darknet-tiny, …)';

const summaryCommand: GapcamCommand = {
  command: 'summary <model>',
  describe: 'Layers, output shapes, parameter counts and the CAM head of a model or backbone',
  builder: (y) =>
    withBackboneOptions(y.positional('model', { type: 'string', describe: MODEL_REF, demandOption: true }))
      .example('$0 model summary vgg16', 'VGG16 with its top: 138,357,544 parameters')
      .example('$0 model summary vgg16 --no-include-top --input-size 448', 'the convolutional part at 448×448')
      .example('$0 model summary darknet-tiny --weights ../shared/models/darknet-tiny', 'a tfjs model used as a backbone')
      .example('$0 model summary checkpoints/my-run', "a trained run's best model and its meta"),
  handler: async (argv) => {
    const args = argv as Args<BackboneArgs & { model: string }>;
    await checkModelRef(args.model, args.checkpoints);
    const { summarizeModel, formatModelSummary } = await import('../models/service.js');
    await startCommandEngine(args);
    const s = await summarizeModel(args.model, { checkpointRoot: args.checkpoints, backbone: backboneOptions(args, true) });
    process.stdout.write(formatModelSummary(s));
  },
};

/** What --out does for the commands writing a model folder (the rule of src/util/out-folder.ts). */
const FORCE_MODEL = '--out is a folder: an existing one is written into (model.json, shards, meta.json, classes.txt, each replaced atomically; nothing else touched); a folder already holding a model is replaced only with --force, a training checkpoint (optimizer.bin, train-state.json) never';

interface SurgeryArgs extends BackboneArgs, OutOption {
  model: string;
  cutAt?: string;
  classes: string;
  convFilters: number;
  kernelSize: number;
  dropout?: number;
  preprocessing?: string;
  force: boolean;
}

const surgeryCommand: GapcamCommand = {
  command: 'surgery <model>',
  describe: 'Cut a model at a layer and add the CAM head: conv (ReLU) → global average pooling → dense softmax',
  builder: (y) =>
    withOutOption(withBackboneOptions(y.positional('model', { type: 'string', describe: MODEL_REF, demandOption: true })),
      'folder to write the new model to (model.json, shards, meta.json, classes.txt)')
      .option('cut-at', { type: 'string', describe: 'keep the graph up to this layer (default: the backbone\'s, e.g. block5_conv3 for VGG16)' })
      .option('classes', { type: 'string', demandOption: true, describe: 'number of classes, comma-separated names, or a file with one name a line' })
      .option('conv-filters', { type: 'number', default: 1024, describe: 'filters of the added conv (0: no conv, GAP on the cut layer)' })
      .option('kernel-size', { type: 'number', default: 3, describe: 'kernel size of the added conv' })
      .option('dropout', { type: 'number', describe: 'dropout rate before the classifier' })
      .option('preprocessing', { type: 'string', describe: "input preprocessing recorded in meta.json: caffe, torch, tf, unit or 'mean=R,G,B std=R,G,B [order=rgb|bgr] [range=255|1]' (default: the backbone's)" })
      .option('force', { type: 'boolean', default: false, describe: FORCE_MODEL })
      .example('$0 model surgery vgg16 --weights imagenet --classes 200 --out checkpoints/vgg16-gap', 'the paper\'s VGGnet-GAP for CUB-200')
      .example('$0 model surgery ../shared/models/darknet-tiny --cut-at leaky_re_lu_15 --classes kangaroo,raccoon --conv-filters 256 --out runs/dn-gap', 'a new 2-class GAP head on darknet-tiny'),
  handler: async (argv) => {
    const args = argv as Args<SurgeryArgs>;
    if (!args.out) throw new UserError('--out: name the folder to write the new model to');
    await checkModelRef(args.model, args.checkpoints);
    const { runSurgery } = await import('../models/service.js');
    await startCommandEngine(args);
    const r = await runSurgery({
      model: args.model,
      classes: args.classes,
      out: args.out,
      cutAt: args.cutAt,
      convFilters: args.convFilters,
      kernelSize: args.kernelSize,
      dropout: args.dropout,
      seed: args.seed,
      preprocessing: args.preprocessing === undefined ? undefined : (await import('../data/preprocess-modes.js')).parsePreprocessMode(args.preprocessing),
      force: args.force,
      checkpointRoot: args.checkpoints,
      backbone: backboneOptions(args, false),
    });
    const m = r.meta;
    console.log(`wrote ${r.out}/{model.json,meta.json,classes.txt}: ${r.keptLayers} kept layers + ${m.featureLayer === 'gap_conv' ? 'gap_conv → ' : ''}gap_pool → gap_classifier → gap_softmax; ${m.classNames.length} classes; ${r.totalParams.toLocaleString('en-US')} parameters; input ${m.inputSize.join('×')}, preprocessing ${typeof m.preprocessing === 'string' ? m.preprocessing : JSON.stringify(m.preprocessing)}`);
    // The new head is always untrained; say so, and louder when the backbone had no weights either.
    console.log(r.randomBackbone
      ? `note: the weights are random — ${args.model} was built without weights (--weights imagenet or a model folder gives it trained ones) and the new GAP head is untrained; train it (gapcam train) before its CAMs mean anything`
      : 'note: the new GAP head (gap_conv/gap_classifier) has random weights; train it (gapcam train) before its CAMs mean anything');
  },
};

interface ExportArgs extends BackboneArgs, OutOption {
  model: string;
  format?: ExportFormat;
  modelConfig: boolean;
  force: boolean;
  web?: boolean;
  quantize?: 'float16' | 'uint8';
}

const exportCommand: GapcamCommand = {
  command: 'export <model>',
  describe: 'Write a model as a tfjs Layers folder (browser-loadable), a Keras .h5 weights file (Keras load_weights), or a static web page showing its CAMs (--web)',
  builder: (y) =>
    withOutOption(withBackboneOptions(y.positional('model', { type: 'string', describe: MODEL_REF, demandOption: true })),
      'tfjs and --web: the folder to write; keras-h5: the .h5 file (or a folder, for <model name>.h5)')
      .option('format', { choices: EXPORT_FORMATS as readonly ExportFormat[], describe: 'tfjs: model.json + shards + meta.json; keras-h5: Keras 2 HDF5 layout' })
      .option('force', { type: 'boolean', default: false, describe: `${FORCE_MODEL}; keras-h5: replace an existing .h5 file` })
      .option('web', { type: 'boolean', describe: 'a self-contained static page: drop a photo, see the top-5 classes and their CAMs (tfjs bundled, no CDN)' })
      .option('quantize', { choices: ['float16', 'uint8'] as const, describe: "--web: store the weights as float16 (half the size) or uint8 (a quarter), the tfjs converter's quantisation" })
      .option('model-config', { type: 'boolean', default: true, describe: 'keras-h5: store the architecture too (keras.models.load_model reads it); --no-model-config writes the plain save_weights layout' })
      .example('$0 model export checkpoints/my-run --format tfjs --out web/model', 'for tf.loadLayersModel in a browser')
      .example('$0 model export checkpoints/my-run --format keras-h5 --out my-run.h5', 'for keras.models.load_model or model.load_weights')
      .example('$0 model export ../shared/models/darknet-tiny --web --quantize uint8 --out /tmp/cam-page', 'a page that shows CAMs of your own photos, offline'),
  handler: async (argv) => {
    const args = argv as Args<ExportArgs>;
    if (args.web) {
      if (args.format) throw new UserError(`--web writes a web page; leave out --format (got --format ${args.format})`);
      if (!args.out) throw new UserError('--out: name the folder to write the web page to');
      await checkModelRef(args.model, args.checkpoints);
      const { exportWeb, formatWebExport, checkWebOut } = await import('../web/export.js');
      checkWebOut(args.out);
      await startCommandEngine(args);
      const r = await exportWeb({ model: args.model, out: args.out, quantization: args.quantize, checkpointRoot: args.checkpoints, backbone: backboneOptions(args, true) });
      process.stdout.write(formatWebExport(r));
      return;
    }
    if (args.quantize) throw new UserError('--quantize: only with --web (tfjs and keras-h5 exports keep float32 weights)');
    if (!args.format) throw new UserError('--format: name tfjs or keras-h5 (or use --web for a web page)');
    if (!args.out) throw new UserError('--out: name the folder (tfjs) or .h5 file (keras-h5) to write');
    await checkModelRef(args.model, args.checkpoints);
    const { exportModel } = await import('../models/service.js');
    await startCommandEngine(args);
    const r = await exportModel({ model: args.model, format: args.format, out: args.out, includeModelConfig: args.modelConfig, force: args.force, checkpointRoot: args.checkpoints, backbone: backboneOptions(args, true) });
    console.log(`exported ${r.source} (${r.loaded}) as ${args.format}: ${r.files.join(', ')}`);
  },
};

export const modelCommand: GapcamCommand = {
  command: 'model <action>',
  describe: 'Models: summary, FC→GAP surgery, export to tfjs / Keras .h5 / a CAM web page',
  builder: (y: Argv<GlobalOptions>) =>
    y
      .command(summaryCommand)
      .command(surgeryCommand)
      .command(exportCommand)
      .demandCommand(1, 'name an action: summary, surgery or export')
      .example('$0 model summary vgg16', 'layers and parameters of VGG16')
      .example('$0 model surgery vgg16 --weights imagenet --classes 200 --out checkpoints/vgg16-gap', "the paper's VGGnet-GAP")
      .example('$0 model export checkpoints/my-run --format keras-h5 --out my-run.h5', 'a Keras .h5 file'),
  handler: () => undefined,
};
