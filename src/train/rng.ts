// The run's random stream. tfjs draws its initialisers and dropout masks from Math.random when no seed is given,
// so a training run installs a seeded generator as Math.random for its duration; its state is saved with every
// checkpoint and restored on --resume, which makes a resumed run draw exactly what an uninterrupted one would.
import seedrandom from 'seedrandom';

export type RngState = seedrandom.State.Alea;

export interface SeededRandom {
  (): number;
  state(): RngState;
}

export function createRandom(seed: number | string, state?: RngState): SeededRandom {
  // seedrandom's Alea generator with state: true exposes state() and accepts it back.
  return state ? seedrandom.alea('', { state }) : seedrandom.alea(String(seed), { state: true });
}

/** Makes `rng` Math.random until the returned function is called. */
export function installRandom(rng: SeededRandom): () => void {
  const original = Math.random;
  Math.random = () => rng();
  return () => {
    Math.random = original;
  };
}

/** Runs `fn` with `rng` as Math.random. */
export async function withRandom<T>(rng: SeededRandom, fn: () => Promise<T> | T): Promise<T> {
  const restore = installRandom(rng);
  try {
    return await fn();
  } finally {
    restore();
  }
}
