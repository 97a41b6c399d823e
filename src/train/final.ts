// What runs after training, as the recipe's `evaluation` section asks: the evaluation module's evaluate() on the
// best checkpoint (classification + CAM localization, exact resize to the input size as wsolevaluation; written to
// <run>/evaluation/) and the CAM module's runCam() for a few test images (<run>/cams/: overlays with the CAM box
// and the ground-truth boxes, gallery.html).
import path from 'node:path';
import { runCam, type CamRunSummary } from '../cam/service.js';
import type { Dataset } from '../data/types.js';
import { evaluate, type EvaluationRun } from '../eval/evaluate.js';
import type { Recipe } from '../recipes/schema.js';
import { resolveAtomicDir } from '../util/atomic.js';

/** The checkpoint the final evaluation uses: best/, else last/. */
export function finalCheckpointDir(runDir: string): string | undefined {
  return resolveAtomicDir(path.join(runDir, 'best')) ?? resolveAtomicDir(path.join(runDir, 'last'));
}

export interface FinalEvaluation {
  checkpoint: string;
  run?: EvaluationRun;
  /** The CAM module's overlays and gallery (<run>/cams/gallery.html). */
  cams?: CamRunSummary;
  /** Headline numbers (percentages). */
  headline: Record<string, number>;
}

export interface FinalEvaluationOptions {
  runDir: string;
  recipe: Recipe;
  dataset: Dataset;
  dataRoot?: string;
  onProgress?: (done: number, total: number) => void;
}

/** Evaluates the run's best checkpoint on recipe.evaluation.split and writes the CAM images. */
export async function evaluateRun(o: FinalEvaluationOptions): Promise<FinalEvaluation> {
  const { recipe, dataset, runDir } = o;
  const ev = recipe.evaluation;
  const checkpoint = finalCheckpointDir(runDir);
  if (!checkpoint) throw new Error(`${runDir} has no checkpoint to evaluate`);
  const out: FinalEvaluation = { checkpoint, headline: {} };
  if (ev.split === 'none' || (!ev.classification && !ev.localization && ev.camImages === 0)) return out;
  if (!dataset.records.some((r) => r.split === ev.split)) return out;
  if (ev.classification || ev.localization) {
    out.run = await evaluate({
      checkpoint, dataset: recipe.data.dataset, split: ev.split, dataRoot: o.dataRoot, out: path.join(runDir, 'evaluation'),
      batchSize: recipe.batchSize, onProgress: o.onProgress, settings: { protocol: ev.protocol },
    });
    const m = out.run.report.metrics;
    out.headline['top-1 accuracy'] = m.classification.top1;
    if (ev.localization && m.localization.count > 0) {
      out.headline['top-1 loc'] = m.localization.rule.top1Loc;
      out.headline['GT-known loc'] = m.localization.rule.gtKnownLoc;
      out.headline['MaxBoxAccV2'] = m.localization.maxBoxAccV2.mean;
      out.headline['center-baseline GT-known loc'] = m.centerBaseline.rule.gtKnownLoc;
    }
  }
  if (ev.camImages > 0) {
    const cams = await runCam({
      model: checkpoint, dataset: recipe.data.dataset, split: ev.split, dataRoot: o.dataRoot, out: path.join(runDir, 'cams'), limit: ev.camImages,
      batchSize: Math.min(recipe.batchSize, 16),
    });
    out.cams = cams;
  }
  return out;
}
