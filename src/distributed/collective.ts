// The collective side of TensorFlow's distributed runtime, through gapcam's patched tfjs-node binding
// (scripts/setup-engine.mjs): joinCluster() starts this process's gRPC server and enables collective ops on the
// engine's eager context; CollectiveGroup.allReduce() runs the CollectiveReduceV2 op across every worker, as Keras'
// MultiWorkerMirroredStrategy does. No socket protocol of our own.
//
// Every worker must issue the same collectives in the same order: instance keys are a counter, so the n-th
// all-reduce of one worker meets the n-th of the others. Eager execution is synchronous: an all-reduce blocks until
// every worker has contributed or `timeoutSeconds` passed; then the peers are probed and the error names the
// worker that is missing.
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { currentEngine } from '../engine.js';
import { taskName, type ClusterSpec } from './cluster.js';
import { serverDef } from './server-def.js';

/** What gapcam's patched binding adds to tfjs-node's (see scripts/setup-engine.mjs, ENGINE_PATCH). */
interface CollectiveBinding {
  enableCollectiveOps(serverDef: Uint8Array): string;
  abortCollectiveOps(message: string): void;
  checkCollectivePeer(task: string, timeoutMs: number): void;
  TF_ATTR_STRING: number; TF_ATTR_INT: number; TF_ATTR_FLOAT: number; TF_ATTR_TYPE: number;
  TF_FLOAT: number; TF_INT32: number;
}
interface NodeBackend {
  binding: CollectiveBinding;
  executeSingleOutput(name: string, attrs: unknown[], inputs: tf.Tensor[]): tf.Tensor;
}

/** A worker stopped answering (died, hung or unreachable): the run cannot go on without it. One line (as a
 *  UserError), exit code 3. */
export class PeerLostError extends UserError {
  override readonly exitCode: number = 3;
  constructor(message: string) {
    super(message);
    this.name = 'PeerLostError';
  }
}

export interface CollectiveOptions {
  /** Seconds an all-reduce waits for the slowest worker before the run stops (GAPCAM_COLLECTIVE_TIMEOUT). */
  timeoutSeconds?: number;
  /** Seconds the first collective waits (workers start at different times: model building, data indexing). */
  startTimeoutSeconds?: number;
}

export const DEFAULT_COLLECTIVE_TIMEOUT = 120;

function engineBackend(): NodeBackend {
  const info = currentEngine();
  const b = tf.backend() as unknown as Partial<NodeBackend>;
  if (info?.name !== 'tensorflow' && info?.name !== 'tensorflow-gpu') {
    throw new UserError(`distributed training needs the native TensorFlow engine; running ${info?.name ?? 'none'} ` +
      `(${info?.notUsed.tensorflow ?? 'start it with --backend tensorflow'})`);
  }
  if (typeof b.binding?.enableCollectiveOps !== 'function') {
    throw new UserError(`distributed training needs gapcam's own build of the engine (.engine/tfjs-node, made by scripts/setup-engine.mjs): ` +
      `the binding in use (${info.source}) does not expose TensorFlow's collective ops; remove @tensorflow/tfjs-node from node_modules ` +
      'or run `node scripts/setup-engine.mjs` and start with that build');
  }
  return b as NodeBackend;
}

export class CollectiveGroup {
  readonly size: number;
  readonly rank: number;
  readonly isChief: boolean;
  private instanceKey = 0;
  private first = true;
  private readonly timeout: number;
  private readonly startTimeout: number;
  /** Milliseconds spent inside all-reduces and how many there were (for the bench's communication share). */
  reduceMs = 0;
  reduceCalls = 0;

  constructor(readonly cluster: ClusterSpec, private readonly backend: NodeBackend, readonly device: string, opts: CollectiveOptions = {}) {
    this.size = cluster.workers.length;
    this.rank = cluster.task;
    this.isChief = cluster.task === 0;
    this.timeout = opts.timeoutSeconds ?? DEFAULT_COLLECTIVE_TIMEOUT;
    this.startTimeout = Math.max(this.timeout, opts.startTimeoutSeconds ?? 300);
  }

  /** Element-wise sum (or mean) of `x` over every worker. Same shape and dtype (float32 or int32) on all of them. */
  allReduce(x: tf.Tensor, op: 'sum' | 'mean' = 'sum'): tf.Tensor {
    const b = this.backend.binding;
    const key = ++this.instanceKey;
    const timeout = this.first ? this.startTimeout : this.timeout;
    const ints = [tf.scalar(this.size, 'int32'), tf.scalar(1, 'int32'), tf.scalar(key, 'int32')];
    const attrs = [
      { name: 'T', type: b.TF_ATTR_TYPE, value: x.dtype === 'int32' ? b.TF_INT32 : b.TF_FLOAT },
      { name: 'Nordering_token', type: b.TF_ATTR_INT, value: 0 },
      { name: 'merge_op', type: b.TF_ATTR_STRING, value: 'Add' },
      { name: 'final_op', type: b.TF_ATTR_STRING, value: op === 'mean' ? 'Div' : 'Id' },
      { name: 'communication_hint', type: b.TF_ATTR_STRING, value: process.env.GAPCAM_COMMUNICATION_HINT ?? 'auto' },
      { name: 'timeout_seconds', type: b.TF_ATTR_FLOAT, value: timeout },
    ];
    const t0 = performance.now();
    try {
      return this.backend.executeSingleOutput('CollectiveReduceV2', attrs, [x, ...ints]);
    } catch (err) {
      throw this.explain(err, timeout);
    } finally {
      this.first = false;
      this.reduceMs += performance.now() - t0;
      this.reduceCalls++;
      tf.dispose(ints);
    }
  }

  /** Sums of plain numbers over every worker (counts, losses), in float32 unless `int`. */
  async sumNumbers(values: number[], dtype: 'float32' | 'int32' = 'float32'): Promise<number[]> {
    const t = tf.tensor1d(values, dtype);
    try {
      const r = this.allReduce(t, 'sum');
      const out = Array.from(await r.data());
      r.dispose();
      return out;
    } finally {
      t.dispose();
    }
  }

  /** Every worker's `value` (JSON), in rank order, on every worker: e.g. the images each worker left out. Built on
   *  two integer sums (the lengths, then each worker's UTF-8 bytes in its own segment of one zeroed vector), since
   *  TensorFlow's collectives move numbers only. Meant for small values (kilobytes): each byte travels as an int32. */
  async gatherJson<T>(value: T): Promise<T[]> {
    const bytes = Buffer.from(JSON.stringify(value), 'utf8');
    const lengths = (await this.sumNumbers(Array.from({ length: this.size }, (_, i) => (i === this.rank ? bytes.length : 0)), 'int32'));
    const offset = lengths.slice(0, this.rank).reduce((a, b) => a + b, 0);
    const all = new Array<number>(Math.max(1, lengths.reduce((a, b) => a + b, 0))).fill(0);
    bytes.forEach((b, i) => (all[offset + i] = b));
    const summed = await this.sumNumbers(all, 'int32');
    let at = 0;
    return lengths.map((n) => {
      const part = Buffer.from(summed.slice(at, at + n));
      at += n;
      return JSON.parse(part.toString('utf8')) as T;
    });
  }

  /** Waits until every worker has reached this point (startup: every server is up). */
  async barrier(): Promise<void> {
    await this.sumNumbers([1], 'int32');
  }

  /** Names the workers that do not answer a health check (after a failed collective). */
  private missingPeers(): number[] {
    const missing: number[] = [];
    for (let i = 0; i < this.size; i++) {
      if (i === this.rank) continue;
      try {
        this.backend.binding.checkCollectivePeer(taskName(i), 3000);
      } catch {
        missing.push(i);
      }
    }
    return missing;
  }

  private explain(err: unknown, timeout: number): Error {
    const msg = (err instanceof Error ? err.message : String(err)).replace(/^Invalid TF_Status: \d+\s*Message:\s*/, '').split('\n')[0];
    const missing = this.missingPeers();
    try {
      this.backend.binding.abortCollectiveOps(`gapcam: stopping after a failed all-reduce: ${msg}`);
    } catch { /* already aborted */ }
    const who = missing.length
      ? missing.map((i) => `worker ${i} (${this.cluster.workers[i]})`).join(', ')
      : 'a worker';
    return new PeerLostError(`distributed: ${who} did not answer within ${timeout} s (${msg.slice(0, 160)}); ` +
      `worker ${this.rank} stops — relaunch every worker with --resume`);
  }
}

let group: CollectiveGroup | undefined;

/** Starts this worker's gRPC server and enables collective ops on the running engine. Call once, right after the
 *  engine starts and before any tensor exists (tensors made earlier stay on the old device name). */
export async function joinCluster(cluster: ClusterSpec, opts: CollectiveOptions = {}): Promise<CollectiveGroup> {
  if (group) throw new Error('joinCluster: this process already joined a cluster');
  const backend = engineBackend();
  let device: string;
  try {
    device = backend.binding.enableCollectiveOps(serverDef(cluster));
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).replace(/^Invalid TF_Status: \d+\s*Message:\s*/, '').split('\n')[0];
    throw new UserError(`distributed: cannot start worker ${cluster.task}'s server on ${cluster.workers[cluster.task]}: ${msg}`);
  }
  const envTimeout = Number(process.env.GAPCAM_COLLECTIVE_TIMEOUT);
  group = new CollectiveGroup(cluster, backend, device, {
    timeoutSeconds: opts.timeoutSeconds ?? (envTimeout > 0 ? envTimeout : undefined), startTimeoutSeconds: opts.startTimeoutSeconds,
  });
  const info = currentEngine();
  if (info) info.distributed = { task: cluster.task, workers: cluster.workers.length, protocol: 'grpc' };
  return group;
}

/** The group this process joined, if any. */
export function collectiveGroup(): CollectiveGroup | undefined {
  return group;
}
