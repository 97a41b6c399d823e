// Shared test helpers: the engine, the shared test material, temp folders and the tensor-leak check.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { startEngine, type EngineName } from '../src/engine.js';
import { projectRoot } from '../src/paths.js';

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
