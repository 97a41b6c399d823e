// Classification accuracy: top-1 / top-k, per-class accuracy, mean per-class accuracy and the confusion matrix.
// Scores are ranked by descending value; equal scores rank the lower class id first (deterministic, like a stable
// sort), so an image whose scores are all equal predicts class 0.
import { UserError } from '../errors.js';
import { csvRow } from '../util/csv.js';

/** Class ids by descending score (ties → lower id first), the first `k`. */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const ids = Array.from({ length: scores.length }, (_, i) => i);
  ids.sort((a, b) => scores[b] - scores[a] || a - b);
  return ids.slice(0, Math.min(k, ids.length));
}

export interface ClassificationResult {
  count: number;
  numClasses: number;
  /** k actually used for top-k (min(5, numClasses) by default). */
  k: number;
  /** Percentages. */
  top1: number;
  topK: number;
  /** Per class: accuracy in percent, or null when the split has no image of that class. */
  perClass: (number | null)[];
  /** Images per class. */
  support: number[];
  /** Mean of perClass over the classes that have images. */
  meanPerClass: number;
  /** confusion[true][predicted] counts. */
  confusion: number[][];
}

export interface ClassificationState {
  count: number;
  confusion: number[][];
  hitsK: number[];
}

export class ClassificationEvaluator {
  private readonly confusion: number[][];
  private readonly hitsK: number[];
  private count = 0;
  readonly k: number;

  constructor(readonly numClasses: number, k = 5) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new UserError(`classification: expected a positive number of classes, found ${numClasses}`);
    this.k = Math.min(k, numClasses);
    this.confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
    this.hitsK = new Array<number>(numClasses).fill(0);
  }

  /** Adds one image from its scores (logits or probabilities, one per class); returns its top-k ranking. */
  accumulate(scores: ArrayLike<number>, label: number): number[] {
    if (scores.length !== this.numClasses) throw new UserError(`classification: expected ${this.numClasses} scores, found ${scores.length}`);
    const ranked = topK(scores, this.k);
    this.accumulateRanked(ranked, label);
    return ranked;
  }

  /** Adds one image from its ranking (best class first, at least k entries unless numClasses < k). */
  accumulateRanked(ranked: readonly number[], label: number): void {
    if (!Number.isInteger(label) || label < 0 || label >= this.numClasses) {
      throw new UserError(`classification: label ${label} is out of range 0..${this.numClasses - 1}`);
    }
    this.confusion[label][ranked[0]]++;
    if (ranked.slice(0, this.k).includes(label)) this.hitsK[label]++;
    this.count++;
  }

  /** The counts so far (mergeable: a sharded evaluation adds its shards' states). */
  state(): ClassificationState {
    return { count: this.count, confusion: this.confusion.map((row) => row.slice()), hitsK: this.hitsK.slice() };
  }

  /** Adds counts accumulated elsewhere over other images (same classes and k). */
  merge(state: ClassificationState): void {
    if (state.confusion.length !== this.numClasses || state.hitsK.length !== this.numClasses) {
      throw new Error(`classification: cannot merge counts of ${state.confusion.length} classes into ${this.numClasses}`);
    }
    state.confusion.forEach((row, t) => row.forEach((v, p) => (this.confusion[t][p] += v)));
    state.hitsK.forEach((v, c) => (this.hitsK[c] += v));
    this.count += state.count;
  }

  compute(): ClassificationResult {
    const support = this.confusion.map((row) => row.reduce((a, b) => a + b, 0));
    const correct = this.confusion.map((row, c) => row[c]);
    const pct = (a: number, b: number): number => (b > 0 ? (a * 100) / b : 0);
    const perClass = support.map((s, c) => (s > 0 ? pct(correct[c], s) : null));
    const present = perClass.filter((v): v is number => v !== null);
    return {
      count: this.count,
      numClasses: this.numClasses,
      k: this.k,
      top1: pct(correct.reduce((a, b) => a + b, 0), this.count),
      topK: pct(this.hitsK.reduce((a, b) => a + b, 0), this.count),
      perClass,
      support,
      meanPerClass: present.length > 0 ? present.reduce((a, b) => a + b, 0) / present.length : 0,
      confusion: this.confusion.map((row) => row.slice()),
    };
  }
}


/** The confusion matrix as CSV: header `true\predicted,<class names…>`, one row per true class. */
export function confusionCsv(confusion: readonly (readonly number[])[], classNames: readonly string[]): string {
  let out = csvRow(['true\\predicted', ...classNames]);
  confusion.forEach((row, c) => {
    out += csvRow([classNames[c] ?? String(c), ...row]);
  });
  return out;
}
