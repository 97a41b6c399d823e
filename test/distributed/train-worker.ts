// One process of the data-parallel equivalence and resume tests: trains the tiny chain model (test/train/tiny.ts)
// for one 10-step epoch of global batch 8 with validation, on the fused step, on the generic step and with a
// BatchNormalization layer in training mode (synchronised across workers), either
// alone or as one worker of a cluster, and prints each run's per-step losses, validation numbers and final
// weights as one JSON line. Usage: train-worker.ts <out-dir> single | <out-dir> <host:port,…> <task>
import * as tf from '@tensorflow/tfjs';
import path from 'node:path';
import { startEngine } from '../../src/engine.js';
import { joinCluster } from '../../src/distributed/collective.js';
import { DataParallel } from '../../src/distributed/data-parallel.js';
import { memoryData } from '../../src/train/data.js';
import { readMetrics } from '../../src/train/metrics.js';
import { train } from '../../src/train/trainer.js';
import { exitOnUserError } from './cluster-helpers.js';
import { tinyCam, tinyRecipe, tinySet, weightsOf, TINY_HEAD } from '../train/tiny.js';

const [out, workers, task] = process.argv.slice(2);
await startEngine('tensorflow');
const parallel = workers === 'single' ? undefined
  : new DataParallel(await joinCluster({ workers: workers.split(','), task: Number(task), source: '--workers' }, { timeoutSeconds: 20 }));
try {
  const results: Record<string, unknown> = {};
  for (const step of ['fused', 'generic', 'batchnorm']) {
    if (step === 'generic') process.env.GAPCAM_GENERIC_STEP = '1';
    if (step === 'batchnorm') delete process.env.GAPCAM_GENERIC_STEP;
    const cam = await tinyCam(7, 2, { batchNorm: step === 'batchnorm' });
    const set = tinySet(80, 1);
    const val = tinySet(21, 2);
    const recipe = tinyRecipe({ batchSize: 8, epochs: 1, optimizer: { type: 'adam' }, lr: 0.01 });
    const data = memoryData({ images: set.images, labels: set.labels, numClasses: 2, batchSize: 8, seed: 5, valImages: val.images, valLabels: val.labels });
    const runDir = path.join(out, `${step}-${workers === 'single' ? 'single' : `w${task}`}`);
    const messages: string[] = [];
    const res = await train({ recipe, cam, data, runDir, headLayers: TINY_HEAD, parallel,
      progress: { log: (m: string) => messages.push(m), startEpoch() {}, step() {}, endEpoch() {}, stop() {} } as never });
    const rows = readMetrics(runDir);
    results[step] = {
      losses: rows.filter((r) => r.kind === 'step').map((r) => r.loss),
      epoch: rows.filter((r) => r.kind === 'epoch').map((r) => ({ valLoss: r.valLoss, valAcc: r.valAcc, acc: r.acc })),
      weights: Object.fromEntries([...(await weightsOf(cam.model))].map(([k, v]) => [k, Array.from(v)])),
      stepLine: messages.find((m) => m.startsWith('training step')), status: res.status, tensors: tf.memory().numTensors,
    };
    cam.model.dispose();
    tf.dispose([set.images, val.images]);
  }
  console.log(JSON.stringify(results));
} catch (err) {
  exitOnUserError(err);
}
process.exit(0);
