// Synchronous data parallelism for the trainer (one hook object, so src/train stays one code path):
// - every worker draws the same seeded epoch order; each takes its own contiguous slice of every global batch
//   (--batch-size is the global batch);
// - the loss of a slice is weighted by its share of the global batch, so the all-reduced SUM of the workers'
//   gradients is the gradient of the global batch's mean loss (exact also for a short last batch);
// - BatchNormalization in training mode uses the global batch's mean and variance (all-reduced sums, two passes as
//   tf.moments does), so N workers × B images compute the step 1 worker × N·B images does;
// - validation is sharded the same way and its sums reduced; the chief (worker 0) alone writes files.
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import type { LabelledBatch, TrainData } from '../train/data.js';
import type { CollectiveGroup } from './collective.js';

const BUCKET_ELEMENTS = (25 * 2 ** 20) / 4;

/** Rows [start, end) of a batch of `rows` that worker `rank` of `size` takes (contiguous, sizes differ by ≤ 1). */
export function sliceOf(rows: number, rank: number, size: number): [number, number] {
  return [Math.floor((rank * rows) / size), Math.floor(((rank + 1) * rows) / size)];
}

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

  /** This worker's share of `data` (sizes stay global, so steps per epoch are unchanged). */
  shard(data: TrainData, batchSize: number): TrainData {
    const { rank, size } = this.group;
    const last = data.trainSize % batchSize;
    if (batchSize < size || (last > 0 && last < size)) {
      throw new UserError(`--batch-size ${batchSize} over ${size} workers: every worker needs at least one image of every batch ` +
        `(the last batch of an epoch has ${last || batchSize}); use a batch size that is a multiple of ${size}`);
    }
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

  /** Replaces each (already weighted) gradient by its sum over the workers, in the order of `variables` (the same
   *  on every worker; variable names can differ between processes); the inputs are disposed. Gradients go in buckets
   *  of up to BUCKET_ELEMENTS (25 MB, PyTorch DDP's default): one all-reduce per bucket, not per tensor. */
  sumGradients(grads: tf.NamedTensorMap, variables: readonly tf.Variable[]): tf.NamedTensorMap {
    const names = variables.map((v) => v.name).filter((n) => grads[n] !== undefined);
    const out: tf.NamedTensorMap = {};
    for (let start = 0; start < names.length;) {
      let end = start, elements = 0;
      do elements += grads[names[end++]].size; while (end < names.length && elements + grads[names[end]].size <= BUCKET_ELEMENTS);
      const bucket = names.slice(start, end);
      const flat = tf.tidy(() => tf.concat(bucket.map((n) => tf.reshape(grads[n], [-1]))));
      const summed = this.group.allReduce(flat, 'sum');
      flat.dispose();
      const parts = tf.split(summed, bucket.map((n) => grads[n].size));
      summed.dispose();
      bucket.forEach((n, i) => {
        out[n] = tf.reshape(parts[i], grads[n].shape);
        parts[i].dispose();
        grads[n].dispose();
      });
      start = end;
    }
    return out;
  }

  /** Sum over the workers of `g × weight` (the fused step's per-layer hook; `g` is left to the caller). */
  sumWeighted(g: tf.Tensor, weight: number): tf.Tensor {
    const w = weight === 1 ? g : tf.mul(g, weight);
    try {
      return this.group.allReduce(w, 'sum');
    } finally {
      if (w !== g) w.dispose();
    }
  }

  /** Sums plain numbers over the workers (the step's weighted loss and correct count; validation sums). */
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
   *  returns the function that undoes it. */
  syncBatchNorm(model: tf.LayersModel): () => void {
    const group = this.group;
    // Sum over the workers, whose gradient is again the sum over the workers of the incoming gradients: worker i's
    // input feeds every worker's loss through the shared statistics.
    const allSum = tf.customGrad(((x: tf.Tensor) => ({
      value: group.allReduce(x, 'sum'),
      gradFunc: (dy: tf.Tensor) => group.allReduce(dy, 'sum'),
    })) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor) => tf.Tensor;
    const patched: tf.layers.Layer[] = [];
    for (const layer of model.layers) {
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const bn = layer as unknown as BatchNormLayer;
      const original = bn.call.bind(bn);
      bn.call = (inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }) => {
        const x = Array.isArray(inputs) ? inputs[0] : inputs;
        const axis = bn.axis < 0 ? bn.axis + x.rank : bn.axis;
        if (!kwargs?.training || axis !== x.rank - 1) return original(inputs, kwargs);
        return tf.tidy(() => {
          const channels = x.shape[axis];
          const axes = [...Array(x.rank - 1).keys()];
          const rows = tf.scalar(x.size / channels);
          const summed = allSum(tf.concat([tf.sum(x, axes), rows.reshape([1])]));
          const count = tf.slice(summed, [channels], [1]);
          const mean = tf.div(tf.slice(summed, [0], [channels]), count);
          const variance = tf.div(allSum(tf.sum(tf.square(tf.sub(x, mean)), axes)), count);
          const out = tf.batchNorm(x, mean, variance, bn.beta?.read(), bn.gamma?.read(), bn.epsilon);
          for (const [moving, value] of [[bn.movingMean, mean], [bn.movingVariance, variance]] as const) {
            tf.tidy(() => {
              const orig = moving.read();
              moving.write(tf.sub(orig, tf.mul(tf.sub(orig, value), 1 - bn.momentum)));
            });
          }
          return out;
        });
      };
      patched.push(layer);
    }
    return () => {
      for (const layer of patched) delete (layer as unknown as { call?: unknown }).call;
    };
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
