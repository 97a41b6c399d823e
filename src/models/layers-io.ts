// Models in and out in the TensorFlow.js Layers format (model.json + weight shards).
// Loading goes through tf.io.fromMemory with bytes read here by node fs (or fetch for http(s)), so it works the
// same on every engine (tensorflow, wasm, cpu) and never lets a model.json reach files outside its own folder.
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { writeFilesAtomic, resolveAtomicDir } from '../util/atomic.js';
import { crashPoint } from '../util/crash-points.js';
import { quantizeWeights, type WeightQuantization } from './quantize.js';
import { READ_LIMITS, readTextBounded } from '../util/bounded-read.js';
import { resolveInside } from '../util/inside.js';

export const MODEL_JSON = 'model.json';
/** Shard size of saved weights: the tfjs converter's 4 MiB, friendly to browsers and http caches. */
const SHARD_BYTES = 4 * 1024 * 1024;
/** Largest model.json read (a real one is a few MB at most; a link to /dev/zero must not be read forever). */
export const MODEL_JSON_MAX_BYTES = 64 * 1024 * 1024;

export function isUrl(ref: string): boolean {
  return /^https?:\/\//i.test(ref);
}

/** A weight path from a model.json resolved inside `dir`; a UserError for absolute paths, URLs and `..` escapes. */
export function resolveWeightPath(dir: string, weightPath: string, modelJsonPath: string): string {
  let p: string;
  try {
    p = decodeURIComponent(weightPath);
  } catch {
    p = weightPath;
  }
  const found = resolveInside(dir, p, { noLinksOut: true });
  if ('problem' in found) {
    const why = found.problem.startsWith('points') || found.problem.startsWith('is a link') ? `${found.problem} the model folder` : found.problem;
    throw new UserError(`${modelJsonPath}: weight path '${weightPath}' ${why}; expected a relative path inside ${dir}`);
  }
  return found.path;
}

export function readJsonFile<T>(file: string, what: string): T {
  let text: string;
  try {
    text = readTextBounded(file, what, READ_LIMITS.json);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`${what}: cannot read ${file}: ${(err as Error).message.split('\n')[0]}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new UserError(`${what}: ${file} is not valid JSON: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function modelJsonPathOf(dirOrFile: string): { dir: string; file: string } {
  const resolved = resolveAtomicDir(dirOrFile) ?? dirOrFile;
  if (!fs.existsSync(resolved)) throw new UserError(`model: ${dirOrFile} does not exist; expected a folder holding ${MODEL_JSON}`);
  if (fs.statSync(resolved).isDirectory()) {
    const file = path.join(resolved, MODEL_JSON);
    if (!fs.existsSync(file)) throw new UserError(`model: ${resolved} holds no ${MODEL_JSON}; expected a tfjs Layers model folder`);
    return { dir: resolved, file };
  }
  return { dir: path.dirname(resolved), file: resolved };
}

function checkModelJson(json: tf.io.ModelJSON, where: string): void {
  if (!json || typeof json !== 'object' || json.modelTopology == null) {
    throw new UserError(`${where}: no 'modelTopology'; expected a TensorFlow.js Layers model.json`);
  }
  const fmt = (json as { format?: string }).format;
  if (fmt && fmt !== 'layers-model') throw new UserError(`${where}: format '${fmt}'; expected 'layers-model' (graph models cannot be used)`);
  if (!Array.isArray(json.weightsManifest)) throw new UserError(`${where}: no 'weightsManifest' list`);
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/** The weight data for `groups` (each group's shards, read in order), joined as tfjs expects them; refuses data
 *  that is not what the manifest describes (a group's shards longer or shorter than its weights, exactly) or that
 *  holds NaN/±Inf in a float32 weight (named, with its layer): such a model would load and then answer
 *  `probability null` for every image. */
export function joinCheckedWeightData(groups: tf.io.WeightsManifestConfig, data: ArrayBuffer[][], where: string): ArrayBuffer {
  const sizeOf = (w: tf.io.WeightsManifestEntry) => {
    const per = DTYPE_BYTES[w.quantization?.dtype ?? w.dtype];
    return per === undefined ? undefined : w.shape.reduce((a, b) => a * b, 1) * per;
  };
  groups.forEach((group, gi) => {
    const bytes = data[gi].reduce((n, b) => n + b.byteLength, 0);
    const sizes = group.weights.map(sizeOf);
    if (sizes.some((n) => n === undefined)) return; // string weights: their sizes are in the data itself
    const expected = (sizes as number[]).reduce((a, b) => a + b, 0);
    if (bytes !== expected) {
      throw new UserError(`${where}: weight files ${group.paths.join(', ')} hold ${bytes} bytes but the manifest's weights take ${expected}; ` +
        'expected an exact match (truncated, padded or another model\'s file)');
    }
  });
  const joined = tf.io.CompositeArrayBuffer.join(data.flat());
  let offset = 0;
  for (const w of groups.flatMap((g) => g.weights)) {
    const size = sizeOf(w);
    if (size === undefined) break; // offsets past a string weight are unknown here
    if (w.dtype === 'float32' && !w.quantization) {
      const n = size / 4;
      const values = offset % 4 === 0 ? new Float32Array(joined, offset, n) : new Float32Array(joined.slice(offset, offset + size));
      for (let i = 0; i < n; i++) {
        if (!Number.isFinite(values[i])) {
          const layer = w.name.includes('/') ? w.name.slice(0, w.name.lastIndexOf('/')) : w.name;
          throw new UserError(`${where}: weight '${w.name}' of layer '${layer}' holds ${values[i]} (element ${i} of ${n}); ` +
            'expected finite numbers (the model diverged in training or its files are damaged)');
        }
      }
    }
    offset += size;
  }
  return joined;
}

/** Loads a tfjs Layers model from a local folder (or a model.json path): reads the shards with node fs and
 *  refuses weight paths that leave the folder. Works on every engine. */
export async function loadLayersModelFromDir(dir: string, opts: LoadLayersOptions = {}): Promise<tf.LayersModel> {
  const { dir: root, file } = modelJsonPathOf(dir);
  const json = readJsonFile<tf.io.ModelJSON>(file, 'model');
  checkModelJson(json, file);
  if (opts.inputShape) setInputShape(json, opts.inputShape, file);
  // Validate every path before reading any.
  const files = json.weightsManifest.map((g) => g.paths.map((p) => resolveWeightPath(root, p, file)));
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const buffers = manifest.map((group, gi) => files[gi].map((f) => {
      let b: Buffer;
      try {
        b = fs.readFileSync(f);
      } catch (err) {
        throw new UserError(`${file}: cannot read weight file ${f}: ${(err as Error).message.split('\n')[0]}`);
      }
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    }));
    return [manifest.flatMap((g) => g.weights), joinCheckedWeightData(manifest, buffers, file)];
  });
  return loadFromArtifacts(artifacts, file, opts.strict);
}

export interface LoadLayersOptions {
  /** Check that every weight in the file is used (default true). */
  strict?: boolean;
  /** Rebuild the topology with this [height, width, channels] input (fully convolutional models only: a Dense layer
   *  after a Flatten would then get weights of the wrong shape, which loading reports). */
  inputShape?: [number, number, number];
}

/** Rewrites the batch input shape of a model.json topology (functional or Sequential). */
export function setInputShape(json: tf.io.ModelJSON, inputShape: [number, number, number], where: string): void {
  type LayerJson = { class_name: string; config: Record<string, unknown> };
  const topo = json.modelTopology as { model_config?: { class_name: string; config: unknown } ; class_name?: string; config?: unknown };
  const mc = (topo.model_config ?? topo) as { class_name?: string; config?: unknown };
  const layers: LayerJson[] | undefined = Array.isArray(mc.config) ? (mc.config as LayerJson[])
    : (mc.config as { layers?: LayerJson[] } | undefined)?.layers;
  if (!layers || layers.length === 0) throw new UserError(`${where}: cannot set the input shape: no layers in the topology`);
  const inputs = layers.filter((l) => l.class_name === 'InputLayer');
  if (inputs.length > 1) throw new UserError(`${where}: cannot set the input shape of a model with ${inputs.length} inputs`);
  const target = inputs[0] ?? layers[0];
  target.config.batch_input_shape = [null, ...inputShape];
  delete target.config.batch_shape;
  delete target.config.input_shape;
}

async function loadFromArtifacts(artifacts: tf.io.ModelArtifacts, where: string, strict = true): Promise<tf.LayersModel> {
  try {
    return await tf.loadLayersModel(tf.io.fromMemory(artifacts), { strict });
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`model ${where}: cannot build the Layers model: ${(err as Error).message.split('\n')[0]}`);
  }
}

async function fetchOk(url: string, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new UserError(`${what}: cannot fetch ${url}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!res.ok) throw new UserError(`${what}: ${url} answered HTTP ${res.status}`);
  return res;
}

/** Loads a tfjs Layers model from an http(s) URL of a model.json (or of the folder holding it). Weight paths must
 *  stay under the model.json's folder on the same server. */
export async function loadLayersModelFromUrl(url: string, opts: LoadLayersOptions = {}): Promise<tf.LayersModel> {
  const modelUrl = url.endsWith('.json') ? url : url.replace(/\/?$/, '/') + MODEL_JSON;
  const base = new URL('.', modelUrl);
  const json = (await (await fetchOk(modelUrl, 'model')).json().catch(() => {
    throw new UserError(`model: ${modelUrl} is not valid JSON`);
  })) as tf.io.ModelJSON;
  checkModelJson(json, modelUrl);
  if (opts.inputShape) setInputShape(json, opts.inputShape, modelUrl);
  const urls = json.weightsManifest.map((g) =>
    g.paths.map((p) => {
      const u = new URL(p, base);
      if (/^[a-z][a-z0-9+.-]*:/i.test(p) || p.startsWith('/') || u.origin !== base.origin || !u.pathname.startsWith(base.pathname)) {
        throw new UserError(`${modelUrl}: weight path '${p}' points outside the model folder; expected a relative path under ${base.href}`);
      }
      return u.href;
    }),
  );
  const artifacts = await tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const buffers: ArrayBuffer[][] = [];
    for (const group of urls) {
      const got: ArrayBuffer[] = [];
      for (const u of group) got.push(await (await fetchOk(u, 'model weights')).arrayBuffer());
      buffers.push(got);
    }
    return [manifest.flatMap((g) => g.weights), joinCheckedWeightData(manifest, buffers, modelUrl)];
  });
  return loadFromArtifacts(artifacts, modelUrl, opts.strict);
}

/** A local folder / model.json path, or an http(s) URL. */
export async function loadLayersModel(source: string, opts: LoadLayersOptions = {}): Promise<tf.LayersModel> {
  return isUrl(source) ? loadLayersModelFromUrl(source, opts) : loadLayersModelFromDir(source, opts);
}

/** Our shard names (as the tfjs converter's): the only files of a previous model that a save may remove. */
export const SHARD_NAME = /^group\d+-shard\d+of\d+(-r\d+)?\.bin$/;

/** The shard files a model.json in `dir` lists (none when there is no readable model.json). */
function listedShards(dir: string): string[] {
  const file = path.join(dir, MODEL_JSON);
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile() || stat.size > MODEL_JSON_MAX_BYTES) return [];
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as tf.io.ModelJSON;
    return (json.weightsManifest ?? []).flatMap((g) => g.paths).filter((p) => SHARD_NAME.test(p));
  } catch {
    return [];
  }
}

/** The files of `model` in the tfjs Layers format, in writing order (shards, then model.json): 4 MiB shards named
 *  like the tfjs converter's (group1-shardXofN.bin), float32 weights optionally quantised as the converter does
 *  (quantize.ts). Loadable with tf.loadLayersModel in a browser. */
export async function layersModelFiles(model: tf.LayersModel, options: { quantization?: WeightQuantization } = {}): Promise<Map<string, string | Uint8Array>> {
  const files = new Map<string, string | Uint8Array>();
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      let data: Uint8Array = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0)));
      let specs = artifacts.weightSpecs ?? [];
      if (options.quantization) ({ specs, data } = quantizeWeights(specs, data, options.quantization));
      const n = Math.max(1, Math.ceil(data.byteLength / SHARD_BYTES));
      const paths: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `group1-shard${i + 1}of${n}.bin`;
        files.set(name, data.subarray(i * SHARD_BYTES, Math.min(data.byteLength, (i + 1) * SHARD_BYTES)));
        paths.push(name);
      }
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: 'gapcam',
        weightsManifest: [{ paths, weights: specs }],
      };
      if (artifacts.trainingConfig) json.trainingConfig = artifacts.trainingConfig;
      files.set(MODEL_JSON, JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: data.byteLength } };
    }),
  );
  return files;
}

/** A model folder's companion files (meta.json, classes.txt): name → content, or null for "this model has none". */
export type Companions = readonly (readonly [string, string | null])[];

/** What a save records in its model.json (`userDefinedMetadata.gapcamSave`): the companion files it writes (content,
 *  or null: removed) and the sha-256 of each as it was before (null: absent). model.json is renamed into place
 *  before the companions, so a crash between the two leaves the replaced model's companions beside the new
 *  model.json; a load recognises them by their hash and reads this save's own (companionOverride). */
interface SaveRecord {
  files: Record<string, string | null>;
  replaced: Record<string, string | null>;
}

const SAVE_RECORD_KEY = 'gapcamSave';

function sha256Of(file: string): string | null {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st?.isFile() || st.size > READ_LIMITS.json) return null;
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** The content a load should use for the companion `name` of the model in `dir` instead of the file there: set
 *  only when that file is still the one the last save replaced (a crash between its model.json and the file's own
 *  rename); `{ text: null }` when that save removed the file. Undefined: read the file as it is (also when it was
 *  edited by hand since). */
export function companionOverride(dir: string, name: string): { text: string | null } | undefined {
  let record: SaveRecord | undefined;
  try {
    const file = path.join(dir, MODEL_JSON);
    record = (JSON.parse(readTextBounded(file, 'model', READ_LIMITS.json)) as { userDefinedMetadata?: Record<string, SaveRecord> })
      .userDefinedMetadata?.[SAVE_RECORD_KEY];
  } catch {
    return undefined; // the model load reports a broken model.json
  }
  if (!record?.files || !(name in record.files) || !record.replaced) return undefined;
  const written = record.files[name];
  const now = sha256Of(path.join(dir, name));
  const mine = written === null ? null : createHash('sha256').update(written).digest('hex');
  return now !== mine && now === (record.replaced[name] ?? null) ? { text: written } : undefined;
}

/** Gives the shards in `files` names no file in `dir` has (`group1-shard1of2-r2.bin`, …) when the converter's own
 *  are taken (a previous model's): the new shards then never overwrite the ones the current model.json lists. */
export function withFreeShardNames(files: Map<string, string | Uint8Array>, dir: string): Map<string, string | Uint8Array> {
  const shards = [...files.keys()].filter((n) => n !== MODEL_JSON);
  const named = (suffix: string) => shards.map((n) => n.replace(/\.bin$/, `${suffix}.bin`));
  let suffix = '';
  for (let r = 2; named(suffix).some((n) => fs.existsSync(path.join(dir, n))); r++) suffix = `-r${r}`;
  if (!suffix) return files;
  const rename = new Map(shards.map((n, i) => [n, named(suffix)[i]]));
  const json = JSON.parse(files.get(MODEL_JSON) as string) as tf.io.ModelJSON;
  for (const g of json.weightsManifest) g.paths = g.paths.map((p) => rename.get(p) ?? p);
  return new Map([...files].map(([n, data]) => (n === MODEL_JSON ? [n, JSON.stringify(json)] : [rename.get(n)!, data])));
}

/** Writes `model` in the tfjs Layers format (layersModelFiles) into `dir` (which must exist), with its companion
 *  files (e.g. meta.json; null removes one), so that a crash at any moment leaves a loadable model that is entirely
 *  the previous one or entirely the new one: the new shards get names no file there has; everything is staged
 *  under temporary names (a full disk leaves the previous model intact); the shards are renamed in, then model.json
 *  — the moment the new model replaces the old — then the companions (which a load reads from model.json's save
 *  record until then, companionOverride); last the previous model's shards are removed. Nothing else in `dir` is
 *  touched. */
export async function writeLayersModelFiles(dir: string, model: tf.LayersModel, companions: Companions = []): Promise<void> {
  const previousShards = listedShards(dir);
  const files = withFreeShardNames(await layersModelFiles(model), dir);
  const record: SaveRecord = {
    files: Object.fromEntries(companions),
    replaced: Object.fromEntries(companions.map(([name]) => [name, sha256Of(path.join(dir, name))])),
  };
  const json = JSON.parse(files.get(MODEL_JSON) as string) as tf.io.ModelJSON;
  json.userDefinedMetadata = { ...json.userDefinedMetadata, [SAVE_RECORD_KEY]: record as unknown as object };
  const shards = [...files].filter(([name]) => name !== MODEL_JSON);
  const written = companions.filter((c): c is readonly [string, string] => c[1] !== null);
  try {
    await writeFilesAtomic(dir, [...shards, [MODEL_JSON, JSON.stringify(json)], ...written], (name) => crashPoint(`model:${name}:renamed`));
  } catch (err) {
    // new shards renamed in before a failure that kept the previous model.json: this save's own, unused
    const listed = new Set(listedShards(dir));
    for (const [name] of shards) if (!listed.has(name) && !previousShards.includes(name)) fs.rmSync(path.join(dir, name), { force: true });
    throw err;
  }
  for (const [name, text] of companions) if (text === null) fs.rmSync(path.join(dir, name), { force: true });
  crashPoint('model:companions-removed');
  for (const old of previousShards) if (!files.has(old)) fs.rmSync(path.join(dir, old), { force: true });
}

/** Saves a plain Layers model (no meta) into `dir` (created when missing), file by file (see writeLayersModelFiles).
 *  Whether `dir` may be written at all is the caller's decision (models/service.ts checks a user's --out). */
export async function saveLayersModelToDir(dir: string, model: tf.LayersModel, companions: Companions = []): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  await writeLayersModelFiles(dir, model, companions);
}
