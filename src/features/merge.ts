// Merging the parts of a sharded `gapcam features` run: the rows of every part in shard order (= dataset order) give
// the same features.npy, index.csv, crops.csv and features.json as the unsharded run (the cache key already covers
// the whole selection), so a later unsharded run with the same settings reuses the merged folder.
import fs from 'node:fs';
import path from 'node:path';
import type { Part } from '../shard/part.js';
import { readFeatureSet, writeFeatureSet, type FeatureIndexRow, type FeaturesMeta } from './store.js';

export interface MergedFeatures {
  out: string;
  count: number;
  dimension: number;
  files: string[];
}

/** Rows of crops.csv after its header, renumbered from `first`. */
function cropRows(file: string, first: number): string[] {
  if (!fs.existsSync(file)) return [];
  const lines = fs.readFileSync(file, 'utf8').split('\n').slice(1).filter((l) => l !== '');
  return lines.map((l, i) => `${first + i}${l.slice(l.indexOf(','))}`);
}

export async function mergeFeatureParts(parts: readonly Part[], out: string): Promise<MergedFeatures> {
  const sets = parts.map((p) => readFeatureSet(p.dir));
  const dimension = sets[0].dimension;
  for (const s of sets) {
    if (s.dimension !== dimension) throw new Error(`merge: ${s.dir} has ${s.dimension}-D features, ${sets[0].dir} ${dimension}-D`);
  }
  const count = sets.reduce((n, s) => n + s.count, 0);
  const data = new Float32Array(count * dimension);
  const rows: FeatureIndexRow[] = [];
  const crops: string[] = [];
  let seconds = 0;
  const skipped: unknown[] = [];
  let fallbacks = 0;
  for (const s of sets) {
    data.set(s.data, rows.length * dimension);
    crops.push(...cropRows(path.join(s.dir, 'crops.csv'), rows.length));
    for (const r of s.rows) rows.push({ ...r, row: rows.length });
    seconds += s.meta.seconds ?? 0;
    fallbacks += (s.meta.extra?.wholeImageFallbacks as number | undefined) ?? 0;
    skipped.push(...((s.meta.extra?.skippedImages as unknown[] | undefined) ?? []));
  }
  const first = sets[0].meta;
  const { shard: _shard, skippedImages: _skipped, wholeImageFallbacks: _fallbacks, ...extra } = first.extra ?? {};
  const meta: FeaturesMeta = {
    ...first,
    count,
    createdAt: new Date().toISOString(),
    // the sum of the shards' extraction times (they may have run in parallel)
    seconds,
    imagesPerSecond: seconds > 0 ? count / seconds : undefined,
    extra: {
      ...('crops' in extra ? { wholeImageFallbacks: fallbacks } : {}),
      ...extra,
      ...(skipped.length ? { skippedImages: skipped } : {}),
    },
  };
  const header = fs.existsSync(path.join(sets[0].dir, 'crops.csv')) ? fs.readFileSync(path.join(sets[0].dir, 'crops.csv'), 'utf8').split('\n')[0] : undefined;
  const extraFiles = header === undefined ? undefined : { 'crops.csv': [header, ...crops].join('\n') + '\n' };
  await writeFeatureSet(out, { data, rows, meta, extraFiles });
  const files = ['features.npy', 'index.csv', ...Object.keys(extraFiles ?? {}), 'features.json'];
  return { out: path.resolve(out), count, dimension, files };
}
