// Merging the parts of a sharded `gapcam evaluate` run. Every part holds its Evaluator's counts (classification
// confusion and top-k hits, fixed-rule hits, MaxBoxAcc/MaxBoxAccV2 hits per τ and δ, the same for the center
// baseline); they are added into one Evaluator and the metrics are computed once from the sums — never averaged
// from the shards' percentages. per-image.csv is the parts' rows in shard order, which is dataset order.
import fs from 'node:fs';
import path from 'node:path';
import type { Part } from '../shard/part.js';
import { EVALUATION_PART_FILE, Evaluator, withMetrics, type EvaluationPartData } from './evaluate.js';
import { markdownSummary, writeEvaluation } from './report.js';

export async function mergeEvaluationParts(parts: readonly Part[], out: string): Promise<{ images: number; lines: string[] }> {
  const data = parts.map((p) => JSON.parse(fs.readFileSync(path.join(p.dir, EVALUATION_PART_FILE), 'utf8')) as EvaluationPartData);
  const first = data[0];
  const { settings, model } = first.context;
  const evaluator = Evaluator.forMerging({ classNames: first.confusionNames, inputSize: model.inputSize }, settings.classMap, settings);
  for (const d of data) evaluator.merge(d.state);
  const metrics = evaluator.result();
  const report = withMetrics({
    ...first.context,
    createdAt: new Date().toISOString(),
    // the sum of the shards' times (they may have run in parallel)
    seconds: data.reduce((sum, d) => sum + d.context.seconds, 0),
  }, metrics);

  const csv = parts.map((p, i) => {
    const text = fs.readFileSync(path.join(p.dir, 'per-image.csv'), 'utf8');
    return i === 0 ? text : text.slice(text.indexOf('\n') + 1);
  });
  // every shard lists the loader's skips; each adds its own decode failures
  const skipped = [...new Map(data.flatMap((d) => d.skipped).map((k) => [k.file, k])).values()];
  await writeEvaluation(out, report, csv.join(''), first.confusionNames, metrics.classification.confusion, skipped);
  return { images: metrics.images, lines: ['evaluation.json, evaluation.md, per-image.csv, confusion.csv', '', ...markdownSummary(report).trimEnd().split('\n')] };
}
