// Shared test helpers: the engine, the shared test material, temp folders, the tensor-leak check, user errors.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startEngine, type EngineName } from '../src/engine.js';
import { projectRoot } from '../src/paths.js';
import { UserError } from '../src/errors.js';

/** The engine every test file runs on: GAPCAM_TEST_BACKEND, else the native tensorflow engine. */
export async function useEngine(): Promise<void> {
  await startEngine((process.env.GAPCAM_TEST_BACKEND as EngineName | undefined) ?? 'tensorflow');
}

/** ../shared beside the project root: darknet-tiny and the kangaroo/raccoon photo sets. */
export const sharedDir = path.resolve(projectRoot, '..', 'shared');
export const darknetTinyDir = path.join(sharedDir, 'models', 'darknet-tiny');
export const sharedDatasetsDir = path.join(sharedDir, 'datasets');

export function makeTempDir(prefix = 'gapcam-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs `body` `rounds` times and asserts that tf.memory().numTensors does not grow after the first round. */
export async function expectNoTensorLeak(body: () => Promise<void> | void, rounds = 3): Promise<void> {
  await body();
  const before = tf.memory().numTensors;
  for (let i = 1; i < rounds; i++) await body();
  expect(tf.memory().numTensors, 'tensor count after repeated rounds').to.equal(before);
}

/** Awaits `p` (or calls it) and checks it fails with a one-line UserError whose message matches every pattern
 *  (a RegExp, or a string it must include); returns the message. */
export async function expectUserError(p: Promise<unknown> | (() => unknown), ...patterns: (RegExp | string)[]): Promise<string> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a UserError matching ${patterns.join(', ')}`).to.be.instanceOf(UserError);
  const msg = (err as Error).message;
  for (const pattern of patterns) {
    if (typeof pattern === 'string') expect(msg).to.include(pattern);
    else expect(msg).to.match(pattern);
  }
  expect(msg).to.not.include('\n');
  return msg;
}

/** The Python of a Keras install (GAPCAM_KERAS_PYTHON, else bench/.venv from scripts/setup-bench.sh); undefined
 *  when there is none (tests that need Keras skip, saying why). */
export function kerasPython(): string | undefined {
  const cands = [process.env.GAPCAM_KERAS_PYTHON, path.join(projectRoot, 'bench', '.venv', 'bin', 'python')];
  return cands.find((c): c is string => !!c && fs.existsSync(c));
}

/** Skips the running test and prints why (mocha's skip takes no reason). */
export function skipWithReason(ctx: Mocha.Context, reason: string): void {
  console.log(`      (skipped: ${reason})`);
  ctx.skip();
}
