// Synchronous data parallelism for the trainer (one hook object, so src/train stays one code path):
// - every worker draws the same seeded epoch order; each takes its own contiguous slice of every global batch
//   (--batch-size is the global batch) and decodes only that slice (TrainData.sharded);
// - the loss of a slice is weighted by its share of the global batch, so the all-reduced SUM of the workers'
//   gradients is the gradient of the global batch's mean loss (exact also for a short last batch);
// - BatchNormalization in training mode uses the global batch's mean and variance (all-reduced sums, two passes as
//   tf.moments does), so N workers × B images compute the step 1 worker × N·B images does;
// - validation is sharded the same way and its sums reduced; the chief (worker 0) alone writes files.
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { sliceOf, type LabelledBatch, type TrainData } from '../train/data.js';
import type { CollectiveGroup } from './collective.js';

const BUCKET_ELEMENTS = (25 * 2 ** 20) / 4;

/** For a source without TrainData.sharded: whole global batches are decoded and this worker's slice kept. */
async function* sliced(batches: AsyncIterable<LabelledBatch>, rank: number, size: number): AsyncIterable<LabelledBatch> {
  for await (const b of batches) {
    const [s, e] = sliceOf(b.labels.length, rank, size);
    if (e <= s) { // only in validation (a training slice is never empty, see shard()); nothing to score here
      b.images.dispose();
      continue;
    }
    const images = tf.slice(b.images, [s, 0, 0, 0], [e - s, -1, -1, -1]) as tf.Tensor4D;
    b.images.dispose();
    yield { images, labels: b.labels.slice(s, e) };
  }
}

export class DataParallel {
  constructor(readonly group: CollectiveGroup) {}

  get isChief(): boolean {
    return this.group.isChief;
  }

  get workers(): number {
    return this.group.size;
  }

  /** This worker's share of `data` (sizes stay global, so steps per epoch are unchanged): its slice of every global
   *  batch, decoded alone when the source can (TrainData.sharded). */
  shard(data: TrainData, batchSize: number): TrainData {
    const { rank, size } = this.group;
    const last = data.trainSize % batchSize;
    if (batchSize < size || (last > 0 && last < size)) {
      throw new UserError(`--batch-size ${batchSize} over ${size} workers: every worker needs at least one image of every batch ` +
        `(the last batch of an epoch has ${last || batchSize}); use a batch size that is a multiple of ${size}`);
    }
    if (data.sharded) return data.sharded(rank, size);
    const out: TrainData = {
      ...data,
      trainBatches: (epoch, startBatch) => sliced(data.trainBatches(epoch, startBatch), rank, size),
    };
    const val = data.valBatches;
    if (val) out.valBatches = () => sliced(val.call(data), rank, size);
    return out;
  }

  /** The weight of this worker's slice in step `stepInEpoch`'s loss (its share of the global batch). */
  lossWeight(localRows: number, trainSize: number, batchSize: number, stepInEpoch: number): number {
    return localRows / Math.min(batchSize, trainSize - stepInEpoch * batchSize);
  }

  /** A fresh set of gradient buckets for one step; `weight` multiplies every gradient added (the fused step's
   *  gradients are of this worker's mean loss: its lossWeight makes them its share of the global batch's). */
  gradientBuckets(weight = 1): GradientBuckets {
    return new GradientBuckets(this.group, weight);
  }

  /** Sums plain numbers over the workers (validation sums). */
  sum(values: number[]): Promise<number[]> {
    return this.group.sumNumbers(values);
  }

  /** Every weight of `model` set to the chief's (the workers built it from the same seed; this makes sure). */
  broadcastWeights(model: tf.LayersModel): void {
    for (const w of model.weights) {
      const v = w.read();
      const mine = this.isChief ? v : tf.zerosLike(v);
      const chiefs = this.group.allReduce(mine, 'sum');
      if (mine !== v) mine.dispose();
      w.write(chiefs);
      chiefs.dispose();
    }
  }

  /** Makes the model's BatchNormalization layers normalise with the global batch's statistics in training mode;
   *  returns the function that undoes it. Three all-reduces per layer and step: the forward pass's two (sums, then
   *  squared deviations from the global mean: two passes, as tf.moments) and one in the backward pass, which needs
   *  only the global sums of dy and dy·x̂ per channel (SyncBatchNorm's gradient as PyTorch writes it) — autodiff
   *  through two summing all-reduces would take two. */
  syncBatchNorm(model: tf.LayersModel): () => void {
    const group = this.group;
    const patched: tf.layers.Layer[] = [];
    for (const layer of model.layers) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const bn = layer as unknown as BatchNormLayer;
      const original = bn.call.bind(bn);
      const normalise = syncedBatchNorm(group, bn);
      bn.call = (inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }) => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const axis = bn.axis < 0 ? bn.axis + x.rank : bn.axis;
        if (!kwargs?.training || axis !== x.rank - 1) return original(inputs, kwargs);
        return tf.tidy(() => {
          const channels = x.shape[axis];
          return normalise(x, bn.gamma?.read() ?? tf.ones([channels]), bn.beta?.read() ?? tf.zeros([channels]));
        });
      };
      patched.push(layer);
    }
    return () => {
      for (const layer of patched) delete (layer as unknown as { call?: unknown }).call;
    };
  }
}

/** BatchNormalization over the global batch (channels last) as one differentiable function of (x, γ, β); also moves
 *  the layer's moving statistics towards the global batch's. With N rows over all workers, x̂ = (x − μ)/σ and
 *  y = γ x̂ + β, the gradient of the workers' summed loss with respect to this worker's x is
 *  γ/σ · (dy − Σdy/N − x̂ · Σ(dy·x̂)/N), the sums over every worker's rows (one all-reduce); γ's and β's gradients are
 *  this worker's Σ(dy·x̂) and Σdy, summed with the other gradients. */
function syncedBatchNorm(group: CollectiveGroup, bn: BatchNormLayer): (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor {
  return tf.customGrad(((x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, save: tf.GradSaveFunc) => {
    const channels = x.shape[x.rank - 1];
    const axes = [...Array(x.rank - 1).keys()];
    const summed = group.allReduce(tf.concat([tf.sum(x, axes), tf.scalar(x.size / channels).reshape([1])]), 'sum');
    const count = tf.slice(summed, [channels], [1]);
    const mean = tf.div(tf.slice(summed, [0], [channels]), count);
    const variance = tf.div(group.allReduce(tf.sum(tf.square(tf.sub(x, mean)), axes), 'sum'), count);
    for (const [moving, value] of [[bn.movingMean, mean], [bn.movingVariance, variance]] as const) {
      tf.tidy(() => {
        const orig = moving.read();
        moving.write(tf.sub(orig, tf.mul(tf.sub(orig, value), 1 - bn.momentum)));
      });
    }
    save([x, mean, variance, gamma, count]);
    return {
      value: tf.batchNorm(x, mean, variance, beta, gamma, bn.epsilon),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const [xs, mu, v, g, n] = saved;
        const invStd = tf.rsqrt(tf.add(v, bn.epsilon));
        const xhat = tf.mul(tf.sub(xs, mu), invStd);
        const sumDy = tf.sum(dy, axes);
        const sumDyXhat = tf.sum(tf.mul(dy, xhat), axes);
        const sums = tf.div(group.allReduce(tf.concat([sumDy, sumDyXhat]), 'sum'), n);
        const meanDy = tf.slice(sums, [0], [channels]);
        const meanDyXhat = tf.slice(sums, [channels], [channels]);
        const dx = tf.mul(tf.mul(g, invStd), tf.sub(tf.sub(dy, meanDy), tf.mul(xhat, meanDyXhat)));
        return [dx, sumDyXhat, sumDy];
      }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor;
}

/** One step's gradients summed over the workers in buckets of up to BUCKET_ELEMENTS (25 MB, PyTorch DDP's default):
 *  the gradients are flattened and concatenated in the order they are added — the same on every worker (the
 *  variables' order; never by name, which can differ between processes) — and each bucket takes one
 *  CollectiveReduceV2. Per-tensor all-reduces of biases and BatchNorm γ/β would each pay a full round trip
 *  (latency-bound); a bucket pays one. A gradient larger than a bucket goes alone. Buckets are summed when full or at
 *  finish(); the eager runtime runs an all-reduce synchronously, so starting one during the backward pass would not
 *  overlap it with the rest of the pass. */
export class GradientBuckets {
  private pending: { name: string; g: tf.Tensor }[] = [];
  private elements = 0;

  constructor(private readonly group: CollectiveGroup, private readonly weight: number) {}

  /** Takes ownership of `grads`; returns the summed gradients of the buckets that filled up (often none yet). */
  add(grads: tf.NamedTensorMap): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    for (const [name, g] of Object.entries(grads)) {
      if (this.pending.length > 0 && this.elements + g.size > BUCKET_ELEMENTS) Object.assign(out, this.flush().grads);
      this.pending.push({ name, g });
      this.elements += g.size;
    }
    return out;
  }

  /** Sums the last bucket, with `extra` (a float32 vector, e.g. the step's weighted loss and correct count; taken
   *  over and not weighted) riding in the same all-reduce; returns those gradients and the summed extra. */
  finish(extra?: tf.Tensor1D): { grads: tf.NamedTensorMap; extra?: tf.Tensor1D } {
    return this.flush(extra);
  }

  /** Drops what is held (a step that failed). */
  dispose(): void {
    tf.dispose(this.pending.map((p) => p.g));
    this.pending = [];
    this.elements = 0;
  }

  private flush(extra?: tf.Tensor1D): { grads: tf.NamedTensorMap; extra?: tf.Tensor1D } {
    if (this.pending.length === 0 && !extra) return { grads: {} };
    const bucket = this.pending;
    this.pending = [];
    this.elements = 0;
    const sizes = bucket.map((p) => p.g.size);
    const flat = tf.tidy(() => {
      const parts: tf.Tensor[] = [];
      if (bucket.length) {
        const joined = bucket.length === 1 ? tf.reshape(bucket[0].g, [-1]) : tf.concat(bucket.map((p) => tf.reshape(p.g, [-1])));
        parts.push(this.weight === 1 ? joined : tf.mul(joined, this.weight));
      }
      if (extra) parts.push(extra);
      return parts.length === 1 ? tf.reshape(parts[0], [-1]) : tf.concat(parts);
    });
    tf.dispose(bucket.map((p) => p.g));
    extra?.dispose();
    let summed: tf.Tensor;
    try {
      summed = this.group.allReduce(flat, 'sum');
    } finally {
      flat.dispose();
    }
    const pieces = tf.split(summed, extra ? [...sizes, extra.size] : sizes);
    summed.dispose();
    const grads: tf.NamedTensorMap = {};
    bucket.forEach((p, i) => {
      grads[p.name] = tf.reshape(pieces[i], p.g.shape);
      pieces[i].dispose();
    });
    return { grads, extra: extra ? pieces[bucket.length] as tf.Tensor1D : undefined };
  }
}

/** The fields of tfjs-layers' BatchNormalization used here. */
interface BatchNormLayer {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma?: { read(): tf.Tensor };
  beta?: { read(): tf.Tensor };
  movingMean: { read(): tf.Tensor; write(t: tf.Tensor): void };
  movingVariance: { read(): tf.Tensor; write(t: tf.Tensor): void };
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor;
}
