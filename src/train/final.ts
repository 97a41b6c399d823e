// What runs after training, as the recipe's `evaluation` section asks: the evaluation module's evaluate() on the
// best checkpoint (classification + CAM localization, exact resize to the input size as wsolevaluation; written to
// <run>/evaluation/) and the CAM module's runCam() for a few test images (<run>/cams/: overlays with the CAM box
// and the ground-truth boxes, gallery.html).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import type { EvaluationSettings } from '../eval/types.js';
import type { ValidationRecord } from './selection.js';
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
  /** Why the evaluation did not run although the recipe asks for one (e.g. the split has no images). */
  skipped?: string;
  /** recipe evaluation.camThreshold 'val': the τ MaxBoxAcc chose on the validation images, and their evaluation. */
  camThreshold?: { value: number; images: number; run: EvaluationRun };
}

export interface FinalEvaluationOptions {
  runDir: string;
  recipe: Recipe;
  dataset: Dataset;
  dataRoot?: string;
  onProgress?: (done: number, total: number) => void;
}

/** The run's validation images (with their boxes) as a dataset whose 'val' split they are: the ids run.json
 *  recorded when they were carved from train, else the dataset's own val split. */
export function validationDataset(runDir: string, dataset: Dataset): Dataset {
  const runFile = path.join(runDir, 'run.json');
  const run = fs.existsSync(runFile) ? (JSON.parse(fs.readFileSync(runFile, 'utf8')) as { validation?: ValidationRecord }) : {};
  const v = run.validation;
  let records = dataset.records.filter((r) => r.split === 'val');
  if (v?.source === 'carved' && v.ids) {
    const ids = new Set(v.ids);
    records = dataset.records.filter((r) => ids.has(r.id)).map((r) => ({ ...r, split: 'val' as const }));
  }
  if (v?.source === 'test' || records.length === 0 || !records.some((r) => r.boxes.length > 0)) {
    throw new UserError(`recipe evaluation.camThreshold 'val': run ${path.basename(runDir)} has no validation images with boxes to choose the threshold on (set data.valSplit 'val', or give a number)`);
  }
  return { ...dataset, records };
}

/** Evaluates the run's best checkpoint on recipe.evaluation.split and writes the CAM images. */
export async function evaluateRun(o: FinalEvaluationOptions): Promise<FinalEvaluation> {
  const { recipe, dataset, runDir } = o;
  const ev = recipe.evaluation;
  const checkpoint = finalCheckpointDir(runDir);
  if (!checkpoint) throw new Error(`${runDir} has no checkpoint to evaluate`);
  const out: FinalEvaluation = { checkpoint, headline: {} };
  if (ev.split === 'none' || (!ev.classification && !ev.localization && ev.camImages === 0)) return out;
  if (!dataset.records.some((r) => r.split === ev.split)) {
    return { ...out, skipped: `the dataset has no ${ev.split} images: final evaluation skipped` };
  }
  if (ev.classification || ev.localization) {
    let settings: Partial<EvaluationSettings> = { protocol: ev.protocol };
    if (ev.camThreshold === 'val') {
      // wsolevaluation's train-fullsup: the threshold is chosen on held-out images with boxes, never on test
      const val = validationDataset(runDir, dataset);
      const run = await evaluate({
        checkpoint, dataset: val, split: 'val', out: path.join(runDir, 'evaluation-val'), batchSize: recipe.batchSize, settings,
      });
      const value = run.report.metrics.localization.maxBoxAcc.perIou[0].bestThreshold;
      out.camThreshold = { value, images: run.report.dataset.images, run };
      settings = { ...settings, camThreshold: value, normalization: 'minmax' };
    } else settings = { ...settings, camThreshold: ev.camThreshold };
    out.run = await evaluate({
      checkpoint, dataset: recipe.data.dataset, split: ev.split, dataRoot: o.dataRoot, out: path.join(runDir, 'evaluation'),
      batchSize: recipe.batchSize, onProgress: o.onProgress, settings,
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
