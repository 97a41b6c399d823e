// Seeded randomness shared by every layer (data splits, epoch orders, CV folds, transfer splits): one generator
// (seedrandom's ARC4) and one Fisher–Yates, so the same seed string gives the same order wherever it is drawn.
import seedrandom from 'seedrandom';

/** A deterministic uniform [0, 1) generator. */
export type Rng = () => number;

export function makeRng(seed: string | number): Rng {
  return seedrandom(String(seed));
}

/** Fisher–Yates shuffle in place (arrays and typed arrays) with a seeded generator. */
export function shuffleInPlace<A extends { length: number; [i: number]: unknown }>(items: A, rng: Rng): A {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
  return items;
}
