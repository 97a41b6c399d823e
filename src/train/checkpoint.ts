// Checkpoints: `<run>/last` and `<run>/best`, each a loadable CAM model folder (model.json + shards + meta.json,
// written by the models module) plus train-state.json (counters, RNG, best so far) and, in `last`, optimizer.bin
// (momentum / Adam slots). The whole folder is filled under a temporary name and renamed into place, so a kill at
// any moment leaves the previous checkpoint intact (or its `.old` copy, which resolveAtomicDir recovers).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { saveCamModel, loadCamModel } from '../models/meta.js';
import type { CamModel } from '../models/types.js';
import { isTempName, resolveAtomicDir, writeDirAtomic } from '../util/atomic.js';
import type { OptimizerState, SlotSpec } from './optimizer.js';
import type { RngState } from './rng.js';

export const TRAIN_STATE_JSON = 'train-state.json';
export const OPTIMIZER_BIN = 'optimizer.bin';

export interface EpochAccumulator {
  lossSum: number;
  correct: number;
  seen: number;
  /** Training seconds spent in this epoch so far. */
  seconds: number;
}

/** Everything beyond the weights that a resumed run needs to continue exactly. */
export interface TrainState {
  format: 'gapcam-train-state';
  version: 1;
  recipe?: string;
  /** 0-based epoch in progress (== epochs completed when stepInEpoch == 0). */
  epoch: number;
  /** Batches of `epoch` already trained (== stepsPerEpoch: trained, validation still to run). */
  stepInEpoch: number;
  /** Batches trained since the start of the run. */
  globalStep: number;
  stepsPerEpoch: number;
  /** Math.random's generator state (dropout masks, initialisers). */
  rng: RngState;
  best: { metric: number; epoch: number; valAcc?: number } | null;
  epochAccum: EpochAccumulator;
  /** Training seconds summed over every session of the run. */
  elapsedSeconds: number;
  optimizer?: { type: OptimizerState['type']; counts: Record<string, number>; slots: SlotSpec[] };
  savedAt: string;
}

export interface Checkpoint {
  dir: string;
  cam: CamModel;
  state: TrainState;
  optimizer?: OptimizerState;
}

/** Writes a checkpoint folder atomically. */
export async function saveCheckpoint(dir: string, cam: CamModel, state: TrainState, optimizer?: OptimizerState): Promise<void> {
  await writeDirAtomic(dir, async (tmp) => {
    await saveCamModel(tmp, cam);
    const full: TrainState = optimizer
      ? { ...state, optimizer: { type: optimizer.type, counts: optimizer.counts, slots: optimizer.slots } }
      : { ...state, optimizer: undefined };
    if (optimizer) {
      const v = optimizer.values;
      fs.writeFileSync(path.join(tmp, OPTIMIZER_BIN), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
    fs.writeFileSync(path.join(tmp, TRAIN_STATE_JSON), JSON.stringify(full, null, 2) + '\n');
  });
}

/** Reads a checkpoint's train state (and optimizer state when present). */
export function readTrainState(dir: string): { state: TrainState; optimizer?: OptimizerState } {
  const file = path.join(dir, TRAIN_STATE_JSON);
  if (!fs.existsSync(file)) throw new UserError(`checkpoint ${dir}: no ${TRAIN_STATE_JSON} (not a gapcam training checkpoint)`);
  let state: TrainState;
  try {
    state = JSON.parse(fs.readFileSync(file, 'utf8')) as TrainState;
  } catch (err) {
    throw new UserError(`checkpoint ${file}: not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (state.format !== 'gapcam-train-state') throw new UserError(`checkpoint ${file}: 'format' should be gapcam-train-state`);
  if (!state.optimizer) return { state };
  const bin = path.join(dir, OPTIMIZER_BIN);
  if (!fs.existsSync(bin)) throw new UserError(`checkpoint ${dir}: ${TRAIN_STATE_JSON} lists optimizer slots but ${OPTIMIZER_BIN} is missing`);
  const buf = fs.readFileSync(bin);
  const expected = state.optimizer.slots.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  if (buf.byteLength !== expected * 4) {
    throw new UserError(`checkpoint ${bin}: ${buf.byteLength} bytes, expected ${expected * 4} for the slots listed in ${TRAIN_STATE_JSON}`);
  }
  const values = new Float32Array(expected);
  new Uint8Array(values.buffer).set(buf);
  return { state, optimizer: { ...state.optimizer, values } };
}

/** Loads `<run>/last` (or its `.old` copy left by a kill between two renames): model, meta, state, optimizer. */
export async function loadLastCheckpoint(runDir: string): Promise<Checkpoint> {
  const dir = resolveAtomicDir(path.join(runDir, 'last'));
  if (!dir) throw new UserError(`--resume: ${runDir} has no last checkpoint (expected ${path.join(runDir, 'last')})`);
  const { state, optimizer } = readTrainState(dir);
  const cam = await loadCamModel(dir);
  return { dir, cam, state, optimizer };
}

/** The best checkpoint as it is on disk: `<run>/best`'s own record of itself (its epoch and metric), or null when
 *  there is none. This, not the copy kept in last/'s state, is what a run reports and resumes against: a kill
 *  between the two saves must never leave the run naming a model that is not there. */
export function readBestOnDisk(runDir: string): { dir: string; best: NonNullable<TrainState['best']> } | null {
  const dir = resolveAtomicDir(path.join(runDir, 'best'));
  if (!dir || !fs.existsSync(path.join(dir, TRAIN_STATE_JSON))) return null;
  const { state } = readTrainState(dir);
  return state.best ? { dir, best: state.best } : null;
}

/** Removes temporary files and folders left in the run folder by a save that was killed (`.last.tmp-<pid>-<time>`,
 *  the model writer's nested `..last.tmp-….tmp-…`, `.report.html.tmp-…`, …): only names gapcam's atomic writer
 *  makes. Call only while holding the run's lock (no save can be running). */
export function removeStaleTemps(runDir: string): void {
  if (!fs.existsSync(runDir)) return;
  for (const f of fs.readdirSync(runDir)) {
    if (isTempName(f)) fs.rmSync(path.join(runDir, f), { recursive: true, force: true });
  }
}
