// Pipeline throughput: images/s of decode + resize + augment (+ preprocess + batch tensor) at 224×224 over the real
// JPEGs of wild2 in ../shared/datasets, without a cache, filling the cache, and reading from it. Not a test.
//   npx tsx bench/pipeline.ts [--epochs 2] [--batch 32] [--concurrency 4] [--backend tensorflow] [--model-ms 0]
// With --model-ms N the consumer spends N ms per batch (a stand-in for the model step) and the line reports how long
// it still waited for decoding: with prefetching that wait should be near zero once N exceeds the decode time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEngine, parseEngineRequest } from '../src/engine.js';
import { projectRoot } from '../src/paths.js';
import { loadDataset } from '../src/data/datasets.js';
import { batches, type PipelineOptions } from '../src/data/pipeline.js';
import type { ImageRecord } from '../src/data/types.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const modelMs = Number(flag('model-ms', '0'));

async function epoch(records: ImageRecord[], options: PipelineOptions): Promise<{ seconds: number; images: number; wait: number; hits: number }> {
  const t0 = performance.now();
  const stream = batches(records, options);
  let images = 0;
  for await (const b of stream) {
    images += b.records.length;
    b.images.dispose();
    if (modelMs > 0) await new Promise((r) => setTimeout(r, modelMs));
  }
  return { seconds: (performance.now() - t0) / 1000, images, wait: stream.stats.waitSeconds, hits: stream.stats.cacheHits };
}

async function main(): Promise<void> {
  const engine = await startEngine(parseEngineRequest(flag('backend', 'auto')));
  const dataRoot = path.resolve(projectRoot, '..', 'shared', 'datasets');
  const ds = await loadDataset('wild2', { dataRoot });
  const epochs = Number(flag('epochs', '2'));
  const base: PipelineOptions = {
    batchSize: Number(flag('batch', '32')),
    transforms: ['resize:256:shorter', 'random-crop:224', 'flip'],
    preprocess: 'caffe',
    shuffle: true,
    seed: 1,
    concurrency: Number(flag('concurrency', '4')),
    skipBadImages: true,
  };
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-cache-'));
  const rows: [string, PipelineOptions][] = [
    ['no cache (decode JPEG every epoch)', base],
    ['random-resized-crop, no cache', { ...base, transforms: ['random-crop:224:0.08-1', 'flip'] }],
  ];
  console.log(`pipeline benchmark: ${ds.records.length} wild2 JPEGs (${dataRoot}), 224×224, batch ${base.batchSize}, concurrency ${base.concurrency}, engine ${engine.name}, ${os.cpus().length} CPUs${modelMs ? `, model stand-in ${modelMs} ms/batch` : ''}`);
  for (const [label, o] of rows) {
    for (let e = 0; e < epochs; e++) {
      const r = await epoch(ds.records, { ...o, epoch: e });
      console.log(`  ${label}, epoch ${e}: ${(r.images / r.seconds).toFixed(1)} images/s (${r.images} images in ${r.seconds.toFixed(2)} s${modelMs ? `, waited ${r.wait.toFixed(2)} s for decoding` : ''})`);
    }
  }
  for (let e = 0; e < epochs + 1; e++) {
    const r = await epoch(ds.records, { ...base, cacheDir, epoch: e });
    console.log(`  with cache, epoch ${e} (${e === 0 ? 'filling' : 'reading'}): ${(r.images / r.seconds).toFixed(1)} images/s (${r.images} images in ${r.seconds.toFixed(2)} s, ${r.hits} cache hits${modelMs ? `, waited ${r.wait.toFixed(2)} s` : ''})`);
  }
  fs.rmSync(cacheDir, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
