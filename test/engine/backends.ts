// Test-only helpers for src/engine: run a body on another tfjs backend and come back, with checks (tf.setBackend
// returns false instead of throwing, after which tfjs would quietly run on whatever it fell back to).
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from '../../src/engine/wasm-kernels.js';

export type TestBackend = 'cpu' | 'wasm' | 'tensorflow';

async function switchTo(name: string): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`tf.setBackend('${name}') failed (running: ${tf.getBackend()})`);
  await tf.ready();
}

/** Runs `body` with `name` as the active backend, then restores the backend that was active before. */
export async function onBackend<T>(name: TestBackend, body: () => Promise<T> | T): Promise<T> {
  const previous = tf.getBackend();
  if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    registerWasmTrainingKernels();
  }
  await switchTo(name);
  try {
    return await body();
  } finally {
    await switchTo(previous);
  }
}

/** Deterministic pseudo-random values in [-1, 1) (a fixed LCG, so every backend gets identical inputs). */
export function fixedValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}
