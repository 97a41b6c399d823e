// Keras 3's native `.keras` archive (what `model.save('x.keras')` writes by default): a zip holding
// `metadata.json` ({keras_version, date_saved}), `config.json` (the model config, Keras 3 serialisation) and
// `model.weights.h5` (the weights in Keras 3's `.weights.h5` layout). Read and written with fflate (zip) and the
// HDF5 code of keras-h5.ts; h5wasm opens files by path, so the weights pass through a private temp file.
import type * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unzipSync, zipSync, strToU8, strFromU8 } from 'fflate';
import { UserError } from '../errors.js';
import { readKerasH5, writeKeras3WeightsH5, kerasModelConfig, EXPORT_KERAS_VERSION, type KerasH5Weights } from './keras-h5.js';

export const KERAS_ARCHIVE_CONFIG = 'config.json';
export const KERAS_ARCHIVE_WEIGHTS = 'model.weights.h5';
export const KERAS_ARCHIVE_METADATA = 'metadata.json';

async function withTempFile<T>(body: (file: string) => Promise<T>): Promise<T> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'gapcam-keras-'));
  try {
    return await body(path.join(dir, KERAS_ARCHIVE_WEIGHTS));
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** The model config and weights of a `.keras` archive (`weights.modelConfig` holds config.json). */
export async function readKerasArchive(file: string): Promise<KerasH5Weights> {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new UserError(`model ${file}: cannot read it: ${(err as Error).message.split('\n')[0]}`);
  }
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, { filter: (f) => [KERAS_ARCHIVE_CONFIG, KERAS_ARCHIVE_WEIGHTS, KERAS_ARCHIVE_METADATA].includes(f.name) });
  } catch (err) {
    throw new UserError(`model ${file}: not a zip archive (${(err as Error).message.split('\n')[0]}); expected a Keras 3 .keras file`);
  }
  for (const need of [KERAS_ARCHIVE_CONFIG, KERAS_ARCHIVE_WEIGHTS]) {
    if (!entries[need]) throw new UserError(`model ${file}: the archive holds no ${need}; expected a Keras 3 .keras file (config.json + model.weights.h5)`);
  }
  let config: unknown;
  try {
    config = JSON.parse(strFromU8(entries[KERAS_ARCHIVE_CONFIG]));
  } catch {
    throw new UserError(`model ${file}: its ${KERAS_ARCHIVE_CONFIG} is not valid JSON`);
  }
  let kerasVersion: string | undefined;
  if (entries[KERAS_ARCHIVE_METADATA]) {
    try {
      kerasVersion = (JSON.parse(strFromU8(entries[KERAS_ARCHIVE_METADATA])) as { keras_version?: string }).keras_version;
    } catch {
      // metadata.json is informational only
    }
  }
  const weights = await withTempFile(async (tmp) => {
    await fs.promises.writeFile(tmp, entries[KERAS_ARCHIVE_WEIGHTS]);
    return readKerasH5(tmp).catch((err: unknown) => {
      throw err instanceof UserError ? new UserError(`model ${file}: ${KERAS_ARCHIVE_WEIGHTS}: ${err.message.replace(tmp, '').replace(/^weights file\s*:?\s*/, '')}`) : err;
    });
  });
  return { ...weights, file, modelConfig: config, kerasVersion: kerasVersion ?? weights.kerasVersion };
}

/** The model config in config.json: tfjs' (Keras 2 style) layer configs, with the `module` fields by which Keras 3
 *  locates the model and layer classes. */
function keras3Config(model: tf.LayersModel): string {
  const cfg = JSON.parse(kerasModelConfig(model)) as { class_name: string; config: { layers?: Record<string, unknown>[] } };
  const layers = (cfg.config.layers ?? []).map((l) => ({ module: 'keras.layers', registered_name: null, ...l }));
  const top = cfg.class_name === 'Sequential' ? 'keras.src.models.sequential' : 'keras.src.models.functional';
  return JSON.stringify({ module: top, class_name: cfg.class_name, registered_name: cfg.class_name, config: { ...cfg.config, layers } });
}

/** Writes `model` as a `.keras` archive, atomically: config.json (the architecture as tfjs serialises it, plus
 *  Keras 3's module fields), model.weights.h5 in Keras 3's layout. Keras 3's `load_model` reads it
 *  (test/models/keras-own.test.ts). */
export async function saveKerasArchive(model: tf.LayersModel, file: string): Promise<void> {
  const target = path.resolve(file);
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  const weights = await withTempFile(async (tmp) => {
    await writeKeras3WeightsH5(model, tmp);
    return fs.promises.readFile(tmp);
  });
  const zip = zipSync({
    [KERAS_ARCHIVE_METADATA]: strToU8(JSON.stringify({ keras_version: EXPORT_KERAS_VERSION, date_saved: new Date().toISOString() })),
    [KERAS_ARCHIVE_CONFIG]: strToU8(keras3Config(model)),
    [KERAS_ARCHIVE_WEIGHTS]: [new Uint8Array(weights), { level: 0 }],
  });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
  try {
    await fs.promises.writeFile(tmp, zip);
    await fs.promises.rename(tmp, target);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}
