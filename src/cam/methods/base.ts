// The shared CAM pipeline (torch-cam style): target activations A → per-class weights → Σ_k w_k ⊙ A_k → ReLU (flag)
// → normalise. A method is one subclass overriding ONE method: `channelWeights` (a weight per channel, as CAM,
// Grad-CAM, Grad-CAM++, XGrad-CAM and Score-CAM), or one level up `elementWeights` (a weight per position and
// channel, as Layer-CAM). What a method needs is declared as flags (FLAGS) that this base class reads, never
// `if (name === …)`.
import * as tf from '@tensorflow/tfjs';
import type { ModelMeta } from '../../models/types.js';
import { detectCamHead } from '../../models/head.js';
import { UserError } from '../../errors.js';
import { lastSpatialLayer, runFeatures, runHead, splitAtLayer, type SplitModel } from '../split.js';
import { checkSelection, normalizeMaps, upsampleMaps, type ClassSelection, type UpsampleOptions } from '../class-maps.js';

export interface MethodFlags {
  /** Needs ∂S_c/∂A, the gradient of the pre-softmax class score with respect to the target activations. */
  gradients: boolean;
  /** Runs extra forward passes on masked inputs (Score-CAM). */
  maskedForward: boolean;
  /** Needs a CAM-ready head (GAP → Dense or class-score conv → GAP) and maps its feature layer only. */
  camHead: boolean;
  /** Default ReLU on the weighted sum (a call may override it). */
  relu: boolean;
}

/** A model to explain: any single-input single-output Layers model; `meta` when known (CAM needs its head). */
export interface CamTarget {
  model: tf.LayersModel;
  meta?: Pick<ModelMeta, 'headKind' | 'featureLayer' | 'poolingLayer' | 'classifierLayer'> & Partial<ModelMeta>;
}

export interface MethodOptions {
  /** Target layer (gradient and score methods); default: the last layer with a 4-D output. */
  layer?: string;
  /** Overrides the method's ReLU flag. */
  relu?: boolean;
  /** Masked images per forward pass (Score-CAM); default 32. */
  batchSize?: number;
}

/** Everything a method's weights may read; all tensors are owned by the pipeline (disposed after the call). */
export interface CamContext {
  split: SplitModel;
  input: tf.Tensor4D;
  /** [N, h, w, C] target activations, one row per image. */
  imageActivations: tf.Tensor4D;
  /** [N·K, h, w, C]: image i's activations repeated for each of its K classes (row i·K + j ↔ classIds[i][j]). */
  activations: tf.Tensor4D;
  /** [N·K, h, w, C] ∂S_c/∂A of each row's class (present when flags.gradients). */
  grads?: tf.Tensor4D;
  /** [N, numClasses] pre-softmax scores of the unmasked input. */
  logits: tf.Tensor2D;
  classIds: number[][];
  /** Per row: its image index and class id. */
  rowImages: number[];
  rowClasses: number[];
  options: MethodOptions;
  /** Class probabilities (softmax of the pre-softmax scores) of any batch of inputs; a forward pass. */
  probabilities(x: tf.Tensor4D): tf.Tensor2D;
}

export interface CamResult {
  /** [N, numClasses] pre-softmax class scores. */
  logits: tf.Tensor2D;
  /** [N, h, w, K] maps at the target layer's resolution: weighted sum (+ ReLU when on), not normalised. */
  maps: tf.Tensor4D;
  classIds: number[][];
  layer: string;
}

export type LayerChoice = 'meta' | 'flag' | 'auto';

/** What every method class provides statically (read by the registry and this base class). */
export interface CamMethodClass {
  new (target: CamTarget, options?: MethodOptions): CamMethod;
  readonly NAME: string;
  readonly FLAGS: MethodFlags;
}

export abstract class CamMethod {
  readonly layer: string;
  /** How the layer was chosen: from the model meta (CAM), --layer, or automatically (last 4-D output). */
  readonly layerChoice: LayerChoice;
  protected readonly split: SplitModel;

  constructor(readonly target: CamTarget, readonly options: MethodOptions = {}) {
    if (this.flags.camHead) {
      const featureLayer = target.meta?.featureLayer ?? camReadyFeatureLayer(target.model);
      if (options.layer && options.layer !== featureLayer) {
        throw new UserError(`--layer ${options.layer}: CAM maps the model's feature layer '${featureLayer}' only; use a gradient method (e.g. --method gradcam) for other layers`);
      }
      this.layer = featureLayer;
      this.layerChoice = 'meta';
    } else if (options.layer) {
      this.layer = options.layer;
      this.layerChoice = 'flag';
    } else {
      this.layer = lastSpatialLayer(target.model);
      this.layerChoice = 'auto';
    }
    this.split = splitAtLayer(target.model, this.layer);
  }

  private get cls(): CamMethodClass {
    return this.constructor as unknown as CamMethodClass;
  }

  /** The registry name. */
  get name(): string {
    return this.cls.NAME;
  }

  get flags(): MethodFlags {
    return this.cls.FLAGS;
  }

  /** Weight per (row, channel): [N·K, C]. Override this, or `elementWeights`. */
  protected channelWeights(_ctx: CamContext): tf.Tensor2D {
    throw new Error(`${this.name}: defines neither channelWeights nor elementWeights`);
  }

  /** Weight per (row, position, channel), broadcastable to [N·K, h, w, C]; by default the channel weights. */
  protected elementWeights(ctx: CamContext): tf.Tensor {
    const w = this.channelWeights(ctx);
    return w.reshape([w.shape[0], 1, 1, w.shape[1]]);
  }

  /** The ReLU actually applied: the call's option, else the method's flag. */
  get relu(): boolean {
    return this.options.relu ?? this.flags.relu;
  }

  /** Raw maps for the selected classes (see CamResult). The caller disposes `logits` and `maps`. */
  compute(input: tf.Tensor4D, classes: ClassSelection): CamResult {
    let classIds: number[][] = [];
    const out = tf.tidy(() => this.withContext(input, classes, (ctx) => {
      classIds = ctx.classIds;
      const n = ctx.classIds.length;
      const k = ctx.classIds[0].length;
      const [, h, w, c] = ctx.imageActivations.shape;
      let maps: tf.Tensor4D;
      if (this.elementWeights === CamMethod.prototype.elementWeights) {
        // channel weights: one batched matmul over the untiled activations, [N, h·w, C] × [N, C, K]
        const cw = this.channelWeights(ctx).reshape([n, k, c]).transpose([0, 2, 1]) as tf.Tensor3D;
        maps = tf.matMul(ctx.imageActivations.reshape([n, h * w, c]) as tf.Tensor3D, cw).reshape([n, h, w, k]);
      } else {
        const rows = tf.sum(tf.mul(this.elementWeights(ctx), ctx.activations), -1) as tf.Tensor3D; // [N·K, h, w]
        maps = rows.reshape([n, k, h, w]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
      }
      if (this.relu) maps = tf.relu(maps);
      return { logits: ctx.logits, maps };
    }));
    return { ...out, classIds, layer: this.layer };
  }

  /** Maps upsampled (bilinear, half-pixel centres by default) to `size` (default: the input size) and min-max
   *  normalised to [0, 1] per image and class: [N, H, W, K]. */
  computeNormalized(input: tf.Tensor4D, classes: ClassSelection, size?: [number, number], up: UpsampleOptions = {}): CamResult {
    const res = this.compute(input, classes);
    const maps = tf.tidy(() => normalizeMaps(upsampleMaps(res.maps, size ?? [input.shape[1], input.shape[2]], up)));
    res.maps.dispose();
    return { ...res, maps };
  }

  /** Class probabilities [N, classes] (softmax of the pre-softmax scores): one plain forward pass. */
  probabilities(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => {
      const [a, ...extras] = runFeatures(this.split, x);
      return tf.softmax(runHead(this.split, a, extras));
    });
  }

  /** The channel weights for inspection and tests: [N·K, C]. */
  weights(input: tf.Tensor4D, classes: ClassSelection): tf.Tensor2D {
    return tf.tidy(() => this.withContext(input, classes, (ctx) => this.channelWeights(ctx)));
  }

  private withContext<T extends tf.TensorContainer>(input: tf.Tensor4D, classes: ClassSelection, body: (ctx: CamContext) => T): T {
    const split = this.split;
    if (input.rank !== 4) throw new UserError(`input: expected a 4-D [N, H, W, 3] batch, found rank ${input.rank}`);
    const [act, ...extras] = runFeatures(split, input);
    const imageActivations = act as tf.Tensor4D;
    const logits = runHead(split, imageActivations, extras);
    const classIds = typeof classes === 'function' ? classes(logits) : classes;
    checkSelection(classIds, input.shape[0], split.numClasses);
    const k = classIds[0].length;
    const rowImages = classIds.flatMap((row, i) => row.map(() => i));
    const rowClasses = classIds.flat();
    const rows = tf.tensor1d(rowImages, 'int32');
    // The per-row (tiled) activations are built only when a method reads them (gradients, Grad-CAM++, …).
    let tiled: tf.Tensor4D | undefined;
    const activations = (): tf.Tensor4D => (tiled ??= (k === 1 ? imageActivations : tf.gather(imageActivations, rows)) as tf.Tensor4D);
    let grads: tf.Tensor4D | undefined;
    if (this.flags.gradients) {
      const extrasRep = k === 1 ? extras : extras.map((e) => tf.gather(e, rows));
      const onehot = tf.oneHot(tf.tensor1d(rowClasses, 'int32'), split.numClasses).toFloat();
      const scoreSum = (a: tf.Tensor) => tf.sum(tf.mul(runHead(split, a, extrasRep), onehot));
      grads = tf.grad(scoreSum)(activations()) as tf.Tensor4D;
    }
    const probabilities = (x: tf.Tensor4D) => this.probabilities(x);
    const options = this.options;
    return body({
      split, input, imageActivations, grads, logits, classIds, rowImages, rowClasses, options, probabilities,
      get activations() {
        return activations();
      },
    });
  }
}


function camReadyFeatureLayer(model: tf.LayersModel): string {
  const head = detectCamHead(model);
  if (typeof head === 'string') {
    throw new UserError(`--method cam: model '${model.name}' is not CAM-ready (${head}); use a gradient method such as --method gradcam`);
  }
  return head.featureLayer;
}
