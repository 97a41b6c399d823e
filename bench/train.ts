// Training throughput of every shipped training recipe on this machine's engine (a benchmark, not a test):
//   npx tsx bench/train.ts [--steps 3] [--batch N] [--recipe vgg-gap-tiny] [--backend tensorflow] [--rounds 1] [--real-only] [--quick]
//                          [--files own|photos] [--variants in-memory,cold]   (e.g. to compare GAPCAM_DECODE_NICE settings quickly)
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
import { datasetTrainData, pipelineTransforms } from '../src/train/pipeline-data.js';
import { prepareImage } from '../src/data/prepare.js';
import { loadDataset } from '../src/data/datasets.js';
import { split } from '../src/data/split.js';
import { projectRoot } from '../src/paths.js';
import type { TrainData } from '../src/train/data.js';
import type { Dataset } from '../src/data/types.js';
import { clearDecodeCaches, decodeWorkerCount } from '../src/data/decode-pool.js';
import { decodeCacheBytes } from '../src/data/decode-cache.js';
import { median } from './stats.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const info = await startEngine(parseEngineRequest(arg('backend')));
  console.log(describeEngine(info));
  const steps = Number(arg('steps') ?? (process.argv.includes('--quick') ? 2 : 3));
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

function cpuMs(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
}

/** Mean training images/s over `steps` steps after one warm-up step, from the run's own step metrics. */
async function timedImagesPerSec(recipe: Recipe, cam: Awaited<ReturnType<typeof buildRecipeModel>>['cam'], headLayers: string[],
  data: TrainData, runDir: string, steps: number, batch: number): Promise<number> {
  await train({ recipe, cam, data, runDir, headLayers, maxSteps: steps + 1 });
  const timed = readMetrics(runDir).filter((r) => r.kind === 'step').slice(1);
  const secs = timed.reduce((a, r) => a + r.imagesPerSec ** -1 * batch, 0);
  return (timed.length * batch) / secs;
}

/** How much each recipe's model waits for data: its step time on real image files through the recipe's own train
 *  transforms, input size and preprocessing vs on the same images held in memory as one tensor. The files are the
 *  recipe's own dataset where it is here (digits-loc is embedded, wild2 is ../shared's photos), and wild2's photos
 *  (the only real JPEGs here) for every recipe, standing in for CUB where that is the recipe's dataset. Variants: the
 *  pipeline as it was (`before`: decoding on the main thread, no cache), and as `gapcam train` runs it now (decode
 *  workers, in-memory + folder decode cache) in the first epoch (`cold`) and in later ones (`warm`; also every epoch
 *  of a later run over the same data, from the folder). Each variant gets a fresh model; the variants take turns
 *  `rounds` times. Each ratio is the median over rounds of in-memory ÷ variant within the same round: this machine's
 *  speed drifts by 10–30 % between minutes, so a ratio of two bests taken minutes apart says more about the drift than
 *  about the pipeline. */
async function realVsMemory(steps: number, only: string | undefined, rounds: number): Promise<void> {
  const sharedRoot = path.resolve(projectRoot, '..', 'shared', 'datasets');
  const rows: string[] = [];
  for (const entry of listRecipes()) {
    if (!entry.recipe || (only && entry.name !== only)) continue;
    const weights = entry.recipe.model.weights === 'imagenet' ? 'none' : entry.recipe.model.weights;
    if (weights !== 'none' && !fs.existsSync(weights)) continue;
    const own = entry.recipe.data.dataset;
    const sources: { label: string; dataset: Dataset }[] = [];
    const files = arg('files');
    if (files !== 'photos' && own !== 'wild2' && own !== 'cub200') sources.push({ label: `${own} (its own)`, dataset: await loadDataset(own) });
    if ((files !== 'own' || own === 'wild2') && fs.existsSync(path.join(sharedRoot, 'kangaroo'))) sources.push({ label: own === 'wild2' ? 'wild2 (its own)' : 'wild2 photos', dataset: await loadDataset('wild2', { dataRoot: sharedRoot }) });
    for (const { label, dataset } of sources) rows.push(await realVsMemoryRow(entry.name, entry.recipe, weights, label, dataset, steps, rounds));
  }
  if (!rows.length) {
    console.log('real images vs in-memory: skipped (no recipe with its data here)');
    return;
  }
  console.log(`\nreal image files vs in-memory step time (each recipe's train transforms; ${steps} timed steps; step time × is the median over ${rounds} round(s) of in-memory ÷ files in the same round; ` +
    `before: main-thread decoding, no cache; now: ${decodeWorkerCount()} decode worker(s), decode cache ${decodeCacheBytes() / 2 ** 20} MiB + folder; ` +
    'cold: first epoch, warm: later epochs and later runs):');
  for (const r of rows) console.log('  ' + r);
}

const ALL_VARIANTS = ['in-memory', 'random', 'before', 'cold', 'warm'] as const;

async function realVsMemoryRow(name: string, base: Recipe, weights: string, label: string, dataset: Dataset, steps: number, rounds: number): Promise<string> {
  const [h, w] = sizeHW(base.data.inputSize);
  const batch = Number(arg('batch') ?? (h * w > 128 * 128 ? Math.min(base.batchSize, 8) : base.batchSize));
  const recipe: Recipe = { ...base, batchSize: batch, epochs: 1, model: { ...base.model, weights },
    data: { ...base.data, preprocessing: base.data.preprocessing ?? 'caffe' } };
  const n = batch * (steps + 1);
  const trainRecords = split(dataset, 'train').slice(0, n);
  const numClasses = dataset.classNames.length;
  // in-memory is the reference and always runs; --variants picks the others
  const picked = arg('variants')?.split(',').map((v) => v.trim());
  const variants = ALL_VARIANTS.filter((v) => v === 'in-memory' || !picked || picked.includes(v));
  // The same images, decoded once and held as one tensor: the in-memory reference (random pixels are also timed,
  // because the step's speed depends on the values it sees).
  const decoded: tf.Tensor4D[] = [];
  for await (const b of datasetTrainData({ recipe, dataset, train: trainRecords, cacheDir: null, workers: 0 }).trainBatches(0, 0)) decoded.push(b.images);
  const realPixels = tf.concat(decoded) as tf.Tensor4D;
  tf.dispose(decoded);
  // What one image costs in CPU (all threads): decoding it through the recipe's train transforms, one at a time on
  // this thread with no cache, and the model's training step (the in-memory runs). In the first epoch both need the
  // same cores: the decoding fits in what the step leaves idle (cores × in-memory wall time − model CPU) or the step
  // time grows to at least (model + decode CPU) ÷ cores — the first-epoch floor printed beside the ratios.
  const transforms = pipelineTransforms(recipe.data.trainTransforms, recipe.data.inputSize, 'trainTransforms');
  const c0 = process.cpuUsage();
  for (const r of trainRecords) await prepareImage(r.path, { transforms, seed: recipe.seed, outputSize: [h, w] }, r.id);
  const decodeMs = cpuMs(c0) / trainRecords.length;
  let modelMs = Infinity;
  const best: Record<string, number> = {};
  const perRound: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const kind of variants) {
      const { cam, headLayers } = await buildRecipeModel(recipe, dataset.classNames, createRandom(1));
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-real-'));
      const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-cache-'));
      const images = kind === 'random' ? tf.randomNormal([n, h, w, 3], 0, 1, 'float32', 1) as tf.Tensor4D : kind === 'in-memory' ? realPixels.clone() : undefined;
      // Every variant gets an empty cache folder; 'cold' also empties the decode workers' in-memory caches, and
      // 'warm' first runs one untimed epoch over the same images.
      const data = images
        ? memoryData({ images, labels: Array.from({ length: n }, (_, i) => i % numClasses), numClasses, batchSize: batch, shuffle: false })
        : kind === 'before'
          ? datasetTrainData({ recipe, dataset, train: trainRecords, cacheDir: null, workers: 0 })
          : datasetTrainData({ recipe, dataset, train: trainRecords, cacheDir });
      try {
        if (kind === 'cold') await clearDecodeCaches();
        if (kind === 'warm') for await (const b of data.trainBatches(0, 0)) b.images.dispose();
        const c1 = process.cpuUsage(), t1 = performance.now();
        const ips = await timedImagesPerSec(recipe, cam, headLayers, data, runDir, steps, batch);
        // the run's CPU includes its warm-up step and checkpoint writes, which the timed steps leave out: the cores it
        // kept busy (CPU ÷ wall over the whole run) times a timed step's wall time per image
        if (kind === 'in-memory') modelMs = Math.min(modelMs, (cpuMs(c1) / (performance.now() - t1)) * (1000 / ips));
        best[kind] = Math.max(best[kind] ?? 0, ips);
        (perRound[kind] ??= []).push(ips);
      } finally {
        cam.model.dispose();
        images?.dispose();
        fs.rmSync(runDir, { recursive: true, force: true });
        fs.rmSync(cacheDir, { recursive: true, force: true });
      }
    }
  }
  realPixels.dispose();
  const ratio = (k: string) => {
    if (!perRound[k]) return '—';
    const rs = perRound[k].map((ips, r) => perRound['in-memory'][r] / ips);
    return rs.length < 3 ? median(rs).toFixed(3) : `${median(rs).toFixed(3)} (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)})`;
  };
  const cores = os.cpus().length, wallMs = 1000 / best['in-memory'];
  const line = `${name.padEnd(14)} ${label.padEnd(22)} ${h}×${w} batch ${String(batch).padStart(2)}  in-memory ${best['in-memory'].toFixed(1)} images/s ` +
    `(random pixels ${best.random?.toFixed(1) ?? '—'}); step time ×: before ${ratio('before')}, now cold ${ratio('cold')}, now warm ${ratio('warm')}; ` +
    `CPU per image: decode ${decodeMs.toFixed(1)} ms, model ${modelMs.toFixed(1)} ms of ${cores} cores × ${wallMs.toFixed(1)} ms ` +
    `(first-epoch floor ${Math.max(1, (modelMs + decodeMs) / (cores * wallMs)).toFixed(3)})`;
  console.log(line);
  return line;
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
