// What runs after training, as the recipe's `evaluation` section asks: the evaluation module's evaluate() on the
// best checkpoint (classification + CAM localization, exact resize to the input size as wsolevaluation; written to
// <run>/evaluation/) and a few CAM overlays (<run>/cams/*.png: the predicted class's CAM over the photo,
// ground-truth boxes in red).
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { classActivationMaps, topKSelection } from '../cam/class-maps.js';
import { loadCamInput, batchOf } from '../cam/input.js';
import type { Dataset, ImageRecord } from '../data/types.js';
import { evaluate, type EvaluationRun } from '../eval/evaluate.js';
import { loadCamModel } from '../models/io.js';
import type { CamModel } from '../models/types.js';
import type { Recipe } from '../recipes/schema.js';
import { mapToSize, renderOverlay, GT_BOX_COLOR } from '../render/overlay.js';
import { resolveAtomicDir, writeFileAtomic } from '../util/atomic.js';

/** The checkpoint the final evaluation uses: best/, else last/. */
export function finalCheckpointDir(runDir: string): string | undefined {
  return resolveAtomicDir(path.join(runDir, 'best')) ?? resolveAtomicDir(path.join(runDir, 'last'));
}

export interface FinalEvaluation {
  checkpoint: string;
  run?: EvaluationRun;
  camImages: string[];
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
  const out: FinalEvaluation = { checkpoint, camImages: [], headline: {} };
  if (ev.split === 'none' || (!ev.classification && !ev.localization && ev.camImages === 0)) return out;
  const records = dataset.records.filter((r) => r.split === ev.split);
  if (records.length === 0) return out;
  if (ev.classification || ev.localization) {
    out.run = await evaluate({
      checkpoint, dataset: recipe.data.dataset, split: ev.split, dataRoot: o.dataRoot, out: path.join(runDir, 'evaluation'),
      batchSize: recipe.batchSize, onProgress: o.onProgress,
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
    const cam = await loadCamModel(checkpoint);
    try {
      out.camImages = await writeCamImages(cam, pickSpread(records, ev.camImages), path.join(runDir, 'cams'), dataset.classNames);
    } finally {
      cam.model.dispose();
    }
  }
  return out;
}

/** `n` records spread over the list (different classes on a sorted dataset). */
function pickSpread(records: ImageRecord[], n: number): ImageRecord[] {
  if (records.length <= n) return records;
  return Array.from({ length: n }, (_, i) => records[Math.floor((i * records.length) / n)]);
}

/** For each record: the top-1 class's CAM over the photo, with the ground-truth boxes; returns the PNG paths. */
export async function writeCamImages(cam: CamModel, records: ImageRecord[], outDir: string, classNames: string[]): Promise<string[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  for (const r of records) {
    const input = await loadCamInput(r.path, cam.meta.inputSize, cam.meta.preprocessing);
    const x = batchOf([input], cam.meta.inputSize);
    const res = classActivationMaps(cam, x, topKSelection(1));
    x.dispose();
    const [, h, w] = res.maps.shape;
    const map = (await res.maps.data()) as Float32Array;
    tf.dispose([res.maps, res.logits]);
    const cls = res.classIds[0][0];
    const full = mapToSize(map, h, w, input.original.width, input.original.height);
    const png = await renderOverlay(input.original, full, { boxes: r.boxes.map((box) => ({ box, color: GT_BOX_COLOR })) });
    const safe = (s: string) => s.replace(/[^\w.-]+/g, '_');
    const file = path.join(outDir, `${safe(r.id)}_true-${safe(classNames[r.label] ?? String(r.label))}_pred-${safe(cam.meta.classNames[cls] ?? String(cls))}.png`);
    await writeFileAtomic(file, png);
    files.push(file);
  }
  return files;
}
