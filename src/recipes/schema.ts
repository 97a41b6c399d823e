// The recipe schema: what a training run is made of, as declarative data (no code runs from a recipe).
// Every field has a default (the lowest level of the precedence defaults < recipe file < command-line flags);
// unknown keys and wrong types are refused with one line naming the key and the file (see loader.ts).
import { z } from 'zod';

const positiveInt = z.number().int().positive();
const nonNegative = z.number().nonnegative();

/** A size in pixels: one number for a square, or [height, width]. */
export const SizeSchema = z.union([positiveInt, z.tuple([positiveInt, positiveInt])], {
  error: 'a positive integer or [height, width] of positive integers',
});

/** Image transforms, applied in order (the data pipeline's transforms); a size left out is the recipe's input size. */
export const TransformSchema = z.discriminatedUnion(
  'op',
  [
    /** Resize: 'exact' to size (aspect ratio not kept: the CAM paper's 224×224 warp), 'shorter' (shorter side = size),
     *  'shorter-crop' (then the central square). */
    z.strictObject({ op: z.literal('resize'), size: SizeSchema.optional(), mode: z.enum(['exact', 'shorter', 'shorter-crop']).default('exact') }),
    /** The central crop of `size`. */
    z.strictObject({ op: z.literal('center-crop'), size: SizeSchema.optional() }),
    /** A random crop of `size`; with `scale` (area fraction range) and `ratio`, a random-resized crop. */
    z.strictObject({
      op: z.literal('random-crop'),
      size: SizeSchema.optional(),
      scale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).optional(),
      ratio: z.tuple([z.number().positive(), z.number().positive()]).optional(),
    }),
    /** Horizontal flip with probability `p` (boxes flipped with the image). */
    z.strictObject({ op: z.literal('flip'), p: z.number().min(0).max(1).default(0.5) }),
  ],
  { error: "a transform object whose 'op' is resize, center-crop, random-crop or flip" },
);

export const PREPROCESSING = ['caffe', 'torch', 'tf', 'unit'] as const;

const triple = z.tuple([z.number(), z.number(), z.number()]);
/** A preset (caffe: BGR minus the ImageNet mean; torch: ImageNet mean/std on [0,1]; tf: [-1,1]; unit: [0,1]) or an
 *  explicit normalisation: channels in `channelOrder`, values in `range` (255 or 1), then (x − mean) / std. */
export const PreprocessingSchema = z.union([
  z.enum(PREPROCESSING),
  z.strictObject({
    mean: triple,
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
    channelOrder: z.enum(['rgb', 'bgr']).default('rgb'),
    range: z.union([z.literal(1), z.literal(255)]).default(255),
  }),
], { error: "a mode (caffe, torch, tf, unit) or {mean, std, channelOrder: 'rgb'|'bgr', range: 255|1}" });
export const OPTIMIZERS = ['sgd', 'adam'] as const;
export const SCHEDULES = ['constant', 'step', 'cosine'] as const;

export const ModelSectionSchema = z.strictObject({
  /** A backbone of the models registry (vgg16, vgg19, vgg-tiny, darknet-tiny, …), or a model of your own: a Keras
   *  file (.h5, .keras), a tfjs model folder or model.json (a path with a '/' or one of those extensions), or an
   *  http(s) URL of a model.json. Relative paths are resolved like `weights`. */
  backbone: z.string().min(1),
  /** 'imagenet' (the official Keras file, cached), 'none' (random initialisation), or a path to a weights file or a
   *  tfjs model folder (relative paths in a recipe are relative to the project root). With a model file as the
   *  backbone, 'none' keeps the file's own weights unless `reinitialize` is set. */
  weights: z.string().min(1).default('none'),
  /** A model-file backbone: re-initialise every layer (its architecture only, random weights). */
  reinitialize: z.boolean().default(false),
  /** Initialisation of the layers that get no pretrained weights (every layer when weights is 'none', else the new
   *  head): 'default' (Keras' glorot-uniform kernels) or 'he-normal' (N(0, 2/fan-in) kernels, zero biases: keeps
   *  activations from shrinking through deep ReLU stacks without batch norm, so training from scratch starts faster). */
  init: z.enum(['default', 'he-normal']).default('default'),
  /** The layer after which everything is cut and the GAP head attached (default: the backbone's own). */
  cutAt: z.string().min(1).optional(),
  head: z
    .strictObject({
      convFilters: positiveInt.default(1024),
      kernelSize: positiveInt.default(3),
      /** Dropout before the classifier (0 = none). */
      dropout: z.number().min(0).lt(1).default(0),
      /** Initial classifier weights: 'default' (glorot-uniform) or 'zeros' (all logits start at 0, the loss at
       *  ln(classes): a pretrained backbone's large features then cannot start the new head at a huge loss). */
      classifierInit: z.enum(['default', 'zeros']).default('default'),
    })
    .prefault({}),
});

export const DataSectionSchema = z.strictObject({
  /** The dataset trained on when --dataset is not given. */
  dataset: z.string().min(1).default('digits-loc'),
  inputSize: SizeSchema.default(224),
  /** Default: the backbone's own (a registered backbone's mode; a Keras application's; else unit, with a warning). */
  preprocessing: PreprocessingSchema.optional(),
  trainTransforms: z.array(TransformSchema).default([{ op: 'resize', mode: 'exact' }, { op: 'flip', p: 0.5 }]),
  evalTransforms: z.array(TransformSchema).default([{ op: 'resize', mode: 'exact' }]),
  trainSplit: z.enum(['train', 'val', 'test']).default('train'),
  /** The held-out split scored (top-1) after every epoch, which selects the best checkpoint; 'none' skips
   *  validation (the best checkpoint is then the lowest training loss). 'val' on a dataset without val images carves
   *  one out of the training split (valCarve). 'test' is refused unless the run is started with --select-on-test:
   *  choosing a checkpoint on the test split inflates every number measured on it (Choe et al., CVPR 2020). */
  valSplit: z.enum(['val', 'test', 'none']).default('val'),
  /** How 'val' is carved from the training split when the dataset has none: seeded, stratified by class. */
  valCarve: z
    .strictObject({
      /** Fraction of each class's training images held out. */
      fraction: z.number().gt(0).lt(1).default(0.1),
      /** Instead of a fraction: this many images per class (wsolevaluation's train-fullsup uses 5 per class on CUB). */
      perClass: positiveInt.nullable().default(null),
      /** Seeds the carve; independent of the training seed, so --seed does not move images between the splits. */
      seed: z.number().int().nonnegative().default(0),
    })
    .prefault({}),
});

export const OptimizerSchema = z.strictObject({
  type: z.enum(OPTIMIZERS).default('sgd'),
  /** SGD momentum (0 = plain SGD). v ← μ·v + g; w ← w − lr·v (the PyTorch / tfjs convention). */
  momentum: z.number().min(0).lt(1).default(0.9),
  nesterov: z.boolean().default(false),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  epsilon: z.number().positive().default(1e-7),
});

export const ScheduleSchema = z.strictObject({
  type: z.enum(SCHEDULES).default('constant'),
  /** step: multiply by gamma every N epochs (a number) or at these epochs (a list). */
  stepEpochs: z.union([positiveInt, z.array(positiveInt)], { error: 'a positive integer or a list of epochs' }).default(10),
  gamma: z.number().positive().default(0.1),
  /** cosine: the learning rate reached at the end. */
  minLr: nonNegative.default(0),
  /** Linear warm-up from warmupStartFactor·lr to the schedule's value over this many epochs (fractions allowed). */
  warmupEpochs: nonNegative.default(0),
  warmupStartFactor: z.number().min(0).max(1).default(0.01),
});

export const FreezeSchema = z.strictObject({
  /** Layer-name prefixes kept frozen (e.g. "block1", "block2"). */
  layers: z.array(z.string().min(1)).default([]),
  /** For how many epochs (null: the whole run). */
  epochs: positiveInt.nullable().default(null),
});

export const EvaluationSchema = z.strictObject({
  /** Split evaluated at the end of training with the best checkpoint ('none' skips the final evaluation). */
  split: z.enum(['train', 'val', 'test', 'none']).default('test'),
  classification: z.boolean().default(true),
  localization: z.boolean().default(true),
  /** Localization geometry: 'gapcam' (exact boxes in original pixels) or 'wsolevaluation' (its BoxEvaluator, bit
   *  for bit); see src/eval/wsolevaluation.ts. */
  protocol: z.enum(['gapcam', 'wsolevaluation']).default('gapcam'),
  /** The fixed CAM threshold of top-1 / GT-known loc: a fraction, or 'val' — wsolevaluation's train-fullsup idea: the
   *  best τ of MaxBoxAcc on the run's validation images (they carry boxes; on CUB the recipes hold out 5 per class),
   *  then applied to the min-max normalised map on test. The test split never chooses it. */
  camThreshold: z.union([z.number().min(0).max(1), z.literal('val')], { error: "a fraction in [0, 1] or 'val'" }).default(0.2),
  /** CAM overlay images written into the run folder at the end. */
  camImages: z.number().int().nonnegative().default(0),
});

export const RecipeSchema = z.strictObject({
  /** Recipes of other kinds (e.g. "transfer", read by the transfer experiments) share recipes/. */
  kind: z.literal('train').default('train'),
  /** Set from the file name by the loader. */
  name: z.string().min(1).optional(),
  description: z.string().default(''),
  model: ModelSectionSchema,
  data: DataSectionSchema.prefault({}),
  optimizer: OptimizerSchema.prefault({}),
  lr: z.number().positive().default(0.01),
  schedule: ScheduleSchema.prefault({}),
  /** L2 weight decay (added to the gradient as wd·w), applied to kernels; biases too with decayBiases. */
  weightDecay: nonNegative.default(0),
  decayBiases: z.boolean().default(false),
  /** Learning-rate multiplier of the layers the surgery adds (the new head usually learns 10× faster). */
  headLrMultiplier: z.number().positive().default(1),
  /** Extra multipliers by layer-name prefix (the longest matching prefix wins; the head multiplier wins over these). */
  lrMultipliers: z.record(z.string(), z.number().positive()).default({}),
  freeze: FreezeSchema.prefault({}),
  /** 'train': batch norm uses batch statistics and updates its moving averages; 'frozen': it uses the stored
   *  statistics (the model runs in inference mode, which also turns dropout off). */
  batchNorm: z.enum(['train', 'frozen']).default('train'),
  batchSize: positiveInt.default(32),
  epochs: positiveInt.default(10),
  seed: z.number().int().nonnegative().default(1),
  evaluation: EvaluationSchema.prefault({}),
});

/** A recipe as written in a file (every field optional except model.backbone). */
export type RecipeInput = z.input<typeof RecipeSchema>;
/** A resolved recipe: every default filled in. */
export type Recipe = z.output<typeof RecipeSchema>;
export type Transform = z.output<typeof TransformSchema>;
export type ScheduleConfig = z.output<typeof ScheduleSchema>;
export type OptimizerConfig = z.output<typeof OptimizerSchema>;

/** [height, width] of a size field. */
export function sizeHW(size: number | [number, number]): [number, number] {
  return typeof size === 'number' ? [size, size] : [size[0], size[1]];
}
