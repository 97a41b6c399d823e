// The results of a transfer experiment, as run.ts produces them and table.ts renders them.
import type { Experiment } from './experiment.js';

export interface SplitResult {
  index: number;
  trainCount: number;
  testCount: number;
  C: number;
  cvAccuracy?: number;
  accuracy: number;
  meanPerClassAccuracy: number;
}

export interface CellResult {
  source: string;
  dataset: string;
  status: 'ok' | 'missing-source' | 'missing-dataset' | 'failed';
  message?: string;
  /** The table's number (the experiment's metric), over splits. */
  mean?: number;
  std?: number;
  accuracy?: { mean: number; std: number };
  meanPerClass?: { mean: number; std: number };
  splits?: SplitResult[];
  shortClasses?: string[];
  features?: { dir: string; count: number; dimension: number; reused: boolean; seconds?: number; imagesPerSecond?: number; skipped: number };
  svmSeconds?: number;
}

export interface DatasetStatus {
  name: string;
  dataset: string;
  present: boolean;
  protocol: string;
  message?: string;
  where?: string;
  images?: number;
  classes?: number;
}

export interface SourceStatus {
  name: string;
  checkpoint: string;
  present: boolean;
  layer: string;
  crop: string;
  message?: string;
  hint?: string;
  dimension?: number;
}

export interface TransferResult {
  experiment: string;
  file: string;
  description?: string;
  out: string;
  metric: Experiment['metric'];
  svm: { cGrid: number[]; folds: number; scale: string; solver: string };
  seed: string | number;
  datasets: DatasetStatus[];
  sources: SourceStatus[];
  cells: CellResult[];
  seconds: number;
  createdAt: string;
}
