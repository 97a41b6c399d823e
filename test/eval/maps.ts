import type { ScoreMap } from '../../src/eval/boxes.js';

/** A score map from rows of numbers. */
export function mapOf(rows: number[][]): ScoreMap {
  const height = rows.length;
  const width = rows[0].length;
  return { data: Float32Array.from(rows.flat()), width, height };
}
