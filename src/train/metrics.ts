// metrics.jsonl + metrics.csv in the run folder: one row per step and one per epoch. Rows are appended as they
// come (a crash loses at most the row being written); on --resume rows past the checkpoint are dropped, so the
// files read as if the run had never stopped.
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../util/atomic.js';

export interface StepRow {
  kind: 'step';
  /** 1-based epoch the step belongs to. */
  epoch: number;
  /** 1-based global step. */
  step: number;
  loss: number;
  acc: number;
  lr: number;
  imagesPerSec: number;
  /** Seconds since the run started (training time, summed over resumes). */
  seconds: number;
}

export interface EpochRow {
  kind: 'epoch';
  epoch: number;
  /** Global step at the end of the epoch. */
  step: number;
  /** Mean training loss and accuracy over the epoch. */
  loss: number;
  acc: number;
  valLoss?: number;
  valAcc?: number;
  lr: number;
  imagesPerSec: number;
  seconds: number;
  /** Whether this epoch's model became the best checkpoint. */
  best: boolean;
}

export type MetricsRow = StepRow | EpochRow;

/** Receives every row the trainer records, after it is in metrics.jsonl (e.g. TensorBoard event files). Awaited
 *  before training goes on, so a sink may read the model's weights. */
export interface MetricsSink {
  row(row: MetricsRow): void | Promise<void>;
  close?(): void;
}

export const METRICS_JSONL = 'metrics.jsonl';
export const METRICS_CSV = 'metrics.csv';
const CSV_HEADER = 'kind,epoch,step,loss,acc,val_loss,val_acc,lr,images_per_sec,seconds,best';

function csvLine(r: MetricsRow): string {
  const num = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '' : String(v));
  if (r.kind === 'step') {
    return ['step', r.epoch, r.step, num(r.loss), num(r.acc), '', '', num(r.lr), num(r.imagesPerSec), num(r.seconds), ''].join(',');
  }
  return ['epoch', r.epoch, r.step, num(r.loss), num(r.acc), num(r.valLoss), num(r.valAcc), num(r.lr), num(r.imagesPerSec),
    num(r.seconds), r.best ? '1' : '0'].join(',');
}

/** Reads metrics.jsonl (a torn last line from a crash is skipped). */
export function readMetrics(runDir: string): MetricsRow[] {
  const file = path.join(runDir, METRICS_JSONL);
  if (!fs.existsSync(file)) return [];
  const rows: MetricsRow[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      rows.push(JSON.parse(line) as MetricsRow);
    } catch {
      // a line cut short by a kill
    }
  }
  return rows;
}

export class MetricsLog {
  readonly rows: MetricsRow[];
  private readonly jsonl: string;
  private readonly csv: string;

  /** Opens the run's metrics; `keepUpToStep` (on resume) drops every row after that global step. */
  constructor(readonly runDir: string, keepUpToStep?: number) {
    this.jsonl = path.join(runDir, METRICS_JSONL);
    this.csv = path.join(runDir, METRICS_CSV);
    fs.mkdirSync(runDir, { recursive: true });
    this.rows = keepUpToStep === undefined ? [] : readMetrics(runDir).filter((r) => r.step <= keepUpToStep);
    writeFileAtomicSync(this.jsonl, this.rows.map((r) => JSON.stringify(r) + '\n').join(''));
    writeFileAtomicSync(this.csv, [CSV_HEADER, ...this.rows.map(csvLine)].join('\n') + '\n');
  }

  append(row: MetricsRow): void {
    this.rows.push(row);
    fs.appendFileSync(this.jsonl, JSON.stringify(row) + '\n');
    fs.appendFileSync(this.csv, csvLine(row) + '\n');
  }

  epochs(): EpochRow[] {
    return this.rows.filter((r): r is EpochRow => r.kind === 'epoch');
  }

  steps(): StepRow[] {
    return this.rows.filter((r): r is StepRow => r.kind === 'step');
  }
}
