// Training throughput of every shipped training recipe on this machine's engine (a benchmark, not a test):
//   npx tsx bench/train.ts [--steps 3] [--batch N] [--recipe vgg-gap-tiny] [--backend tensorflow] [--rounds 1] [--real-only]
//   node dist/bench/train.js …   (after npm run build)
// Each recipe's model is built as `gapcam train` builds it (backbone + GAP surgery at the recipe's input size;
// ImageNet weights are replaced by random ones because nothing downloads here, which does not change the speed;
// darknet-tiny is read from ../shared/models/darknet-tiny), then timed on in-memory random batches through the real
// training loop (forward, loss, gradients, optimizer update with the recipe's multipliers, frozen layers and
// decay). One warm-up step is not counted. Then each recipe's step on real JPEGs vs in-memory tensors
// (realVsMemory; --real-only skips the first table). The data pipeline alone is measured by bench/pipeline.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { startEngine, describeEngine, parseEngineRequest } from '../src/engine.js';
import { listRecipes } from '../src/recipes/loader.js';
import { sizeHW, type Recipe } from '../src/recipes/schema.js';
import { buildRecipeModel } from '../src/train/run.js';
import { createRandom } from '../src/train/rng.js';
import { memoryData } from '../src/train/data.js';
import { train } from '../src/train/trainer.js';
import { readMetrics } from '../src/train/metrics.js';
import { datasetTrainData } from '../src/train/pipeline-data.js';
import { loadDataset } from '../src/data/datasets.js';
import { split } from '../src/data/split.js';
import { projectRoot } from '../src/paths.js';
import type { TrainData } from '../src/train/data.js';
import { clearDecodeCaches, decodeWorkerCount } from '../src/data/decode-pool.js';
import { decodeCacheBytes } from '../src/data/decode-cache.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const info = await startEngine(parseEngineRequest(arg('backend')));
  console.log(describeEngine(info));
  const steps = Number(arg('steps') ?? 3);
  const only = arg('recipe');
  const rows: string[] = [];
  for (const entry of listRecipes()) {
    if (!entry.recipe || (only && entry.name !== only) || process.argv.includes('--real-only')) continue;
    let recipe: Recipe = entry.recipe;
    // the recipe's batch, capped at 8 for 224-pixel models (the images/s barely changes, the wait does)
    const [ih, iw] = sizeHW(recipe.data.inputSize);
    const batch = Number(arg('batch') ?? (ih * iw > 128 * 128 ? Math.min(recipe.batchSize, 8) : recipe.batchSize));
    const weights = recipe.model.weights === 'imagenet' ? 'none' : recipe.model.weights;
    if (weights !== 'none' && !fs.existsSync(weights)) {
      console.log(`${entry.name}: skipped (weights ${weights} not found)`);
      continue;
    }
    recipe = { ...recipe, batchSize: batch, epochs: 1, model: { ...recipe.model, weights } };
    const [h, w] = sizeHW(recipe.data.inputSize);
    const classes = Array.from({ length: recipe.data.dataset === 'cub200' ? 200 : recipe.data.dataset === 'wild2' ? 2 : 10 }, (_, i) => `c${i}`);
    const { cam, headLayers } = await buildRecipeModel(recipe, classes, createRandom(1));
    const n = batch * (steps + 1);
    const images = tf.randomNormal([n, h, w, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const labels = Array.from({ length: n }, (_, i) => i % classes.length);
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-train-'));
    const data = memoryData({ images, labels, numClasses: classes.length, batchSize: batch, shuffle: false });
    try {
      const ips = await timedImagesPerSec(recipe, cam, headLayers, data, runDir, steps, batch);
      const secs = (steps * batch) / ips;
      const timed = { length: steps };
      const params = cam.model.countParams();
      const line = `${entry.name.padEnd(14)} ${recipe.model.backbone.padEnd(13)} ${h}×${w} batch ${String(batch).padStart(2)}  ` +
        `${ips.toFixed(1).padStart(7)} images/s  (${(secs / timed.length).toFixed(2)} s/step, ${(params / 1e6).toFixed(2)} M params)`;
      console.log(line);
      rows.push(line);
    } finally {
      cam.model.dispose();
      images.dispose();
      fs.rmSync(runDir, { recursive: true, force: true });
    }
  }
  if (rows.length) {
    console.log(`\ntraining images/s on ${info.name} (${info.threads} threads), ${steps} timed steps each, random in-memory batches:`);
    for (const r of rows) console.log('  ' + r);
  }
  await realVsMemory(steps, only, Number(arg('rounds') ?? 1));
}

/** Mean training images/s over `steps` steps after one warm-up step, from the run's own step metrics. */
async function timedImagesPerSec(recipe: Recipe, cam: Awaited<ReturnType<typeof buildRecipeModel>>['cam'], headLayers: string[],
  data: TrainData, runDir: string, steps: number, batch: number): Promise<number> {
  await train({ recipe, cam, data, runDir, headLayers, maxSteps: steps + 1 });
  const timed = readMetrics(runDir).filter((r) => r.kind === 'step').slice(1);
  const secs = timed.reduce((a, r) => a + r.imagesPerSec ** -1 * batch, 0);
  return (timed.length * batch) / secs;
}

/** How much each recipe's model waits for data: its step time on real JPEGs (wild2's photos, the only real ones
 *  here, through the recipe's own train transforms, input size and preprocessing) vs on the same images held in
 *  memory as one tensor, for the pipeline as it was (decoding on the main thread, no cache), and as `gapcam train` runs it now
 *  (decode workers, in-memory + on-disk decode cache) in the first epoch (cold caches) and in later ones (warm).
 *  Each variant gets a fresh model; the variants take turns `rounds` times and the best of each is kept, so that
 *  another process's burst does not decide a ratio. */
async function realVsMemory(steps: number, only: string | undefined, rounds: number): Promise<void> {
  const dataRoot = path.resolve(projectRoot, '..', 'shared', 'datasets');
  if (!fs.existsSync(path.join(dataRoot, 'kangaroo'))) {
    console.log('real JPEGs vs in-memory: skipped (needs ../shared/datasets)');
    return;
  }
  const dataset = await loadDataset('wild2', { dataRoot });
  const rows: string[] = [];
  for (const entry of listRecipes()) {
    if (!entry.recipe || (only && entry.name !== only)) continue;
    const [h, w] = sizeHW(entry.recipe.data.inputSize);
    const batch = Number(arg('batch') ?? (h * w > 128 * 128 ? Math.min(entry.recipe.batchSize, 8) : entry.recipe.batchSize));
    const weights = entry.recipe.model.weights === 'imagenet' ? 'none' : entry.recipe.model.weights;
    if (weights !== 'none' && !fs.existsSync(weights)) continue;
    const recipe: Recipe = { ...entry.recipe, batchSize: batch, epochs: 1, model: { ...entry.recipe.model, weights },
      data: { ...entry.recipe.data, preprocessing: entry.recipe.data.preprocessing ?? 'caffe' } };
    const n = batch * (steps + 1);
    const trainRecords = split(dataset, 'train').slice(0, n);
    const variants = ['in-memory', 'random', 'before', 'cold', 'warm'] as const;
    // The same images, decoded once and held as one tensor: the in-memory reference (random pixels are also timed,
    // because the step's speed depends on the values it sees).
    const decoded: tf.Tensor4D[] = [];
    for await (const b of datasetTrainData({ recipe, dataset, train: trainRecords, cacheDir: null, workers: 0 }).trainBatches(0, 0)) decoded.push(b.images);
    const realPixels = tf.concat(decoded) as tf.Tensor4D;
    tf.dispose(decoded);
    const best: Record<string, number> = {};
    for (let round = 0; round < rounds; round++) {
      for (const kind of variants) {
        const { cam, headLayers } = await buildRecipeModel(recipe, dataset.classNames, createRandom(1));
        const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-real-'));
        const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-cache-'));
        const images = kind === 'random' ? tf.randomNormal([n, h, w, 3], 0, 1, 'float32', 1) as tf.Tensor4D : kind === 'in-memory' ? realPixels.clone() : undefined;
        // Every variant gets an empty cache folder; 'cold' also empties the decode workers' in-memory caches, and
        // 'warm' first runs one untimed epoch over the same images.
        const data = images
          ? memoryData({ images, labels: Array.from({ length: n }, (_, i) => i % 2), numClasses: 2, batchSize: batch, shuffle: false })
          : kind === 'before'
            ? datasetTrainData({ recipe, dataset, train: trainRecords, cacheDir: null, workers: 0 })
            : datasetTrainData({ recipe, dataset, train: trainRecords, cacheDir });
        try {
          if (kind === 'cold') await clearDecodeCaches();
          if (kind === 'warm') for await (const b of data.trainBatches(0, 0)) b.images.dispose();
          const ips = await timedImagesPerSec(recipe, cam, headLayers, data, runDir, steps, batch);
          best[kind] = Math.max(best[kind] ?? 0, ips);
        } finally {
          cam.model.dispose();
          images?.dispose();
          fs.rmSync(runDir, { recursive: true, force: true });
          fs.rmSync(cacheDir, { recursive: true, force: true });
        }
      }
    }
    realPixels.dispose();
    const ratio = (k: string) => (best['in-memory'] / best[k]).toFixed(3);
    const line = `${entry.name.padEnd(14)} ${h}×${w} batch ${String(batch).padStart(2)}  in-memory ${best['in-memory'].toFixed(1)} images/s ` +
      `(random pixels ${best.random.toFixed(1)}); ` +
      `real JPEGs step time ×: before ${ratio('before')}, now cold ${ratio('cold')}, now warm ${ratio('warm')}`;
    console.log(line);
    rows.push(line);
  }
  console.log(`\nreal JPEGs vs in-memory step time (wild2 photos through each recipe's train transforms; ${steps} timed steps, best of ${rounds}; ` +
    `before: main-thread decoding, no cache; now: ${decodeWorkerCount()} decode worker(s), decode cache ${decodeCacheBytes() / 2 ** 20} MiB + folder; ` +
    'cold: first epoch, warm: later epochs):');
  for (const r of rows) console.log('  ' + r);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
