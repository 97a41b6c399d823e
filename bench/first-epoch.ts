// A first epoch on image files against the same images in memory, for one recipe and one dataset, in one process:
// in-memory and cold (empty decode caches, fresh cache folder) take turns `--rounds` times, each on a fresh model, and
// the fastest of each is kept. Short and in-process, so that comparing settings of the decode workers
// (GAPCAM_DECODE_NICE, GAPCAM_DECODE_WORKERS) takes a minute per pair. Not a test.
//   node dist/bench/first-epoch.js <recipe> <dataset: digits-loc | wild2> [--steps 6] [--rounds 2]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { startEngine } from '../src/engine.js';
import { loadDataset } from '../src/data/datasets.js';
import { split } from '../src/data/split.js';
import { datasetTrainData } from '../src/train/pipeline-data.js';
import { memoryData } from '../src/train/data.js';
import { loadRecipe } from '../src/recipes/loader.js';
import { sizeHW } from '../src/recipes/schema.js';
import { buildRecipeModel } from '../src/train/run.js';
import { createRandom } from '../src/train/rng.js';
import { train } from '../src/train/trainer.js';
import { readMetrics } from '../src/train/metrics.js';
import { clearDecodeCaches, decodeNiceness, decodeWorkerCount } from '../src/data/decode-pool.js';
import { projectRoot } from '../src/paths.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  await startEngine();
  const [recipeName, datasetName] = process.argv.slice(2);
  if (!recipeName || !datasetName) throw new Error('usage: first-epoch <recipe> <dataset: digits-loc | wild2> [--steps 6] [--rounds 2]');
  const steps = Number(flag('steps', '6')), rounds = Number(flag('rounds', '2'));
  process.chdir(projectRoot); // recipe weights paths are relative to the project
  const base = loadRecipe(recipeName);
  const [h, w] = sizeHW(base.data.inputSize);
  const batch = h * w > 128 * 128 ? Math.min(base.batchSize, 8) : base.batchSize;
  const recipe = { ...base, batchSize: batch, epochs: 1 };
  const dataset = datasetName === 'wild2'
    ? await loadDataset('wild2', { dataRoot: path.resolve(projectRoot, '..', 'shared', 'datasets') })
    : await loadDataset(datasetName);
  const records = split(dataset, 'train').slice(0, batch * (steps + 1));
  const decoded: tf.Tensor4D[] = [];
  for await (const b of datasetTrainData({ recipe, dataset, train: records, cacheDir: null, workers: 0 }).trainBatches(0, 0)) decoded.push(b.images);
  const pixels = tf.concat(decoded) as tf.Tensor4D;
  tf.dispose(decoded);
  const best: Record<string, number> = {};
  for (let r = 0; r < rounds; r++) {
    for (const kind of ['in-memory', 'cold'] as const) {
      const { cam, headLayers } = await buildRecipeModel(recipe, dataset.classNames, createRandom(1));
      const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-first-'));
      const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-cache-'));
      const images = kind === 'in-memory' ? pixels.clone() : undefined;
      const data = images
        ? memoryData({ images, labels: records.map((x) => x.label), numClasses: dataset.classNames.length, batchSize: batch, shuffle: false })
        : datasetTrainData({ recipe, dataset, train: records, cacheDir });
      try {
        if (kind === 'cold') await clearDecodeCaches();
        await train({ recipe, cam, data, runDir, headLayers, maxSteps: steps + 1 });
        const timed = readMetrics(runDir).filter((x) => x.kind === 'step').slice(1); // the first step warms up
        const ips = (timed.length * batch) / timed.reduce((a, x) => a + batch / x.imagesPerSec, 0);
        best[kind] = Math.max(best[kind] ?? 0, ips);
      } finally {
        cam.model.dispose();
        images?.dispose();
        fs.rmSync(runDir, { recursive: true, force: true });
        fs.rmSync(cacheDir, { recursive: true, force: true });
      }
    }
  }
  pixels.dispose();
  console.log(`${recipeName} on ${datasetName}, batch ${batch}, ${steps} timed steps, best of ${rounds}; decode workers ${decodeWorkerCount()} at nice ${decodeNiceness()}: ` +
    `in-memory ${best['in-memory'].toFixed(1)} images/s, first epoch ${best.cold.toFixed(1)}; step time × ${(best['in-memory'] / best.cold).toFixed(3)}`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
