// `gapcam datasets check`: validates a dataset end to end — every image decodes fully, its decoded size matches the
// record, every box lies inside its image and has area, every class id is in range, no split is empty, no image is
// listed twice. Problems are collected (never thrown) so one run reports them all.
import type { Dataset, Split } from './types.js';
import { decodeImage } from './image.js';
import { checkBox, mapConcurrent } from './util.js';
import { splitCounts } from './split.js';
import { UserError } from '../errors.js';

export interface DatasetProblem {
  file: string;
  problem: string;
}

export interface DatasetCheckReport {
  name: string;
  root: string;
  images: number;
  classes: number;
  boxes: number;
  counts: Partial<Record<Split, number>>;
  decoded: number;
  problems: DatasetProblem[];
  seconds: number;
}

export async function checkDataset(ds: Dataset, options: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<DatasetCheckReport> {
  const t0 = Date.now();
  const problems: DatasetProblem[] = (ds.skipped ?? []).map((s) => ({ file: s.file, problem: s.reason }));
  const counts = splitCounts(ds);
  for (const s of ['train', 'test'] as const) {
    if (!counts[s]) problems.push({ file: ds.root, problem: `the ${s} split is empty` });
  }
  const seen = new Map<string, string>();
  for (const r of ds.records) {
    if (!(Number.isInteger(r.label) && r.label >= 0 && r.label < ds.classNames.length)) {
      problems.push({ file: r.path, problem: `class id ${r.label} out of range 0..${ds.classNames.length - 1}` });
    }
    const prev = seen.get(r.path);
    if (prev !== undefined) problems.push({ file: r.path, problem: `listed twice (ids ${prev} and ${r.id})` });
    seen.set(r.path, r.id);
  }
  let decoded = 0, done = 0;
  await mapConcurrent(ds.records, options.concurrency ?? 4, async (r) => {
    try {
      const img = await decodeImage(r.path);
      decoded++;
      if (img.width !== r.width || img.height !== r.height) {
        problems.push({ file: r.path, problem: `decoded size ${img.width}×${img.height} differs from the recorded ${r.width}×${r.height}` });
      }
      for (const b of r.boxes) {
        const c = checkBox(b, img.width, img.height);
        if (typeof c === 'string') problems.push({ file: r.path, problem: c });
      }
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push({ file: r.path, problem: err.message });
    }
    options.onProgress?.(++done, ds.records.length);
  });
  return {
    name: ds.name, root: ds.root, images: ds.records.length, classes: ds.classNames.length,
    boxes: ds.records.reduce((n, r) => n + r.boxes.length, 0), counts, decoded, problems, seconds: (Date.now() - t0) / 1000,
  };
}
