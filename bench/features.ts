// GAP-feature throughput and SVM fit time: darknet-tiny (../shared/models/darknet-tiny) on the 364 wild2 photos
// (../shared/datasets) at 224×224, whole images and CAM crops (two passes), then the linear SVM (C by 5-fold CV over
// the default grid, then refit) on the train split, scored on the test split. Not a test.
//   npx tsx bench/features.ts [--batch 32] [--backend tensorflow] [--crop] (also time --crop cam)
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startEngine, parseEngineRequest } from '../src/engine.js';
import { projectRoot } from '../src/paths.js';
import { loadDataset } from '../src/data/datasets.js';
import { loadCamModel } from '../src/models/meta.js';
import { extractFeatures } from '../src/features/extract.js';
import { trainAndTestSvm } from '../src/svm/service.js';
import type { FeatureSet } from '../src/features/store.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

async function main(): Promise<void> {
  const engine = await startEngine(parseEngineRequest(flag('backend', 'auto')));
  const shared = path.resolve(projectRoot, '..', 'shared');
  const ds = await loadDataset('wild2', { dataRoot: path.join(shared, 'datasets'), skipBadImages: true });
  const cam = await loadCamModel(path.join(shared, 'models', 'darknet-tiny'));
  const batchSize = Number(flag('batch', '32'));
  console.log(`features benchmark: darknet-tiny GAP (128-D) on ${ds.records.length} wild2 photos, 224×224, batch ${batchSize}, engine ${engine.name}, ${os.cpus().length} CPUs, load average ${os.loadavg()[0].toFixed(1)}`);
  // Warm-up: the first batch builds the graph.
  await extractFeatures(cam, ds.records.slice(0, batchSize), { batchSize, skipBadImages: true });
  const full = await extractFeatures(cam, ds.records, { batchSize, skipBadImages: true });
  console.log(`  whole images: ${full.imagesPerSecond.toFixed(1)} images/s (${full.count} in ${full.seconds.toFixed(2)} s)`);
  if (process.argv.includes('--crop')) {
    const crop = await extractFeatures(cam, ds.records, { batchSize, crop: 'cam', skipBadImages: true });
    console.log(`  CAM crops (whole-image pass + crop pass): ${crop.imagesPerSecond.toFixed(1)} images/s (${crop.count} in ${crop.seconds.toFixed(2)} s)`);
  }
  const kept = full.kept.map((i) => ds.records[i]);
  const set = (which: string): FeatureSet => {
    const rows = kept.map((r, i) => ({ r, i })).filter(({ r }) => r.split === which);
    const data = new Float32Array(rows.length * full.dimension);
    rows.forEach(({ i }, k) => data.set(full.data.subarray(i * full.dimension, (i + 1) * full.dimension), k * full.dimension));
    return {
      dir: `wild2-${which}`,
      data,
      count: rows.length,
      dimension: full.dimension,
      rows: rows.map(({ r }, k) => ({ row: k, imageId: r.id, path: r.path, classId: r.label, className: ds.classNames[r.label], split: r.split })),
      meta: { format: 'gapcam-features', version: 1, cacheKey: '', source: {} as never, count: rows.length, dimension: full.dimension, classNames: ds.classNames, createdAt: '' },
    };
  };
  const t0 = performance.now();
  const r = trainAndTestSvm(set('train'), set('test'));
  const total = (performance.now() - t0) / 1000;
  console.log(`  SVM: ${r.trainCount} train rows, C = ${r.model.C} by ${r.cv!.folds}-fold CV over ${r.cv!.grid.length} values in ${r.seconds.cv.toFixed(3)} s, refit ${r.seconds.fit.toFixed(3)} s, total ${total.toFixed(3)} s; test accuracy ${(100 * r.test!.accuracy).toFixed(2)} %`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
