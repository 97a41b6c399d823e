// `--weights imagenet`: the official Keras VGG16/VGG19 weight files, downloaded once from their published address,
// checked against Keras' md5 and cached (written atomically) under checkpoints/pretrained/. A copy already in Keras'
// own cache ($KERAS_HOME/models, else ~/.keras/models — where keras.utils.get_file puts it) is used in place when its
// md5 matches, so nothing is downloaded twice; a Keras file that does not match is left alone.
import type * as tf from '@tensorflow/tfjs';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { UserError } from '../errors.js';
import { defaultCheckpointRoot } from '../paths.js';
import { loadKerasWeights, type LoadKerasWeightsReport } from './keras-h5.js';

/** Where keras-applications publishes its weights (overridable with GAPCAM_WEIGHTS_BASE_URL or weightsBaseUrl). */
export const KERAS_WEIGHTS_BASE_URL = 'https://storage.googleapis.com/tensorflow/keras-applications/';

export interface PretrainedFile {
  /** Path under the base URL. */
  urlPath: string;
  file: string;
  md5: string;
}

export const IMAGENET_WEIGHTS: Record<'vgg16' | 'vgg19', { top: PretrainedFile; notop: PretrainedFile }> = {
  vgg16: {
    top: { urlPath: 'vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5', file: 'vgg16_weights_tf_dim_ordering_tf_kernels.h5', md5: '64373286793e3c8b2b4e3219cbf3544b' },
    notop: { urlPath: 'vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', file: 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5', md5: '6d6bbae143d832006294945121d1f1fc' },
  },
  vgg19: {
    top: { urlPath: 'vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5', file: 'vgg19_weights_tf_dim_ordering_tf_kernels.h5', md5: 'cbe5617147190e668d6c5d5026f83318' },
    notop: { urlPath: 'vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5', file: 'vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5', md5: '253f8cb515780f3b799900260a226db6' },
  },
};

export interface PretrainedOptions {
  /** Cache folder (default GAPCAM_PRETRAINED_DIR, else checkpoints/pretrained). */
  cacheDir?: string;
  /** Base URL of the weight files (default GAPCAM_WEIGHTS_BASE_URL, else Keras' published address). */
  weightsBaseUrl?: string;
  /** Called with (bytes received, total bytes or undefined) during a download. */
  onProgress?: (received: number, total: number | undefined) => void;
  /** Where the one-line "downloading … → …" notice goes (default stderr; pass () => {} to silence). */
  log?: (line: string) => void;
  /** Keras' cache folders searched before downloading (default: kerasCacheDirs()). */
  kerasCacheDirs?: string[];
}

/** Where Keras' get_file caches model files: $KERAS_HOME/models, else ~/.keras/models. */
export function kerasCacheDirs(env: NodeJS.ProcessEnv = process.env): string[] {
  return [path.join(env.KERAS_HOME || path.join(os.homedir(), '.keras'), 'models')];
}

export function pretrainedCacheDir(opts: PretrainedOptions = {}): string {
  return opts.cacheDir ?? process.env.GAPCAM_PRETRAINED_DIR ?? path.join(defaultCheckpointRoot(), 'pretrained');
}

export async function md5OfFile(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function firstLine(err: unknown): string {
  const e = err as { message?: string; cause?: { code?: string; message?: string } };
  const cause = e?.cause?.code ?? e?.cause?.message;
  return `${(e?.message ?? String(err)).split('\n')[0]}${cause ? ` (${cause})` : ''}`;
}

/** Downloads `url` to `target` atomically, checking its md5; returns the target. */
export async function downloadVerified(url: string, target: string, md5: string, opts: PretrainedOptions = {}): Promise<string> {
  const offline = () => `download ${url} yourself and put it at ${target}`;
  let res: Response;
  try {
    res = await fetch(url);
  } catch (err) {
    throw new UserError(`cannot download ${url}: ${firstLine(err)}; ${offline()}`);
  }
  if (!res.ok || !res.body) throw new UserError(`cannot download ${url}: HTTP ${res.status}; ${offline()}`);
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now()}`);
  const total = Number(res.headers.get('content-length')) || undefined;
  const hash = crypto.createHash('md5');
  let received = 0;
  try {
    const out = fs.createWriteStream(tmp);
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    for await (const chunk of body) {
      const buf = chunk as Buffer;
      hash.update(buf);
      received += buf.length;
      opts.onProgress?.(received, total);
      if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  } catch (err) {
    await fs.promises.rm(tmp, { force: true });
    throw new UserError(`download of ${url} failed after ${received} bytes: ${firstLine(err)}; ${offline()}`);
  }
  const got = hash.digest('hex');
  if (got !== md5) {
    await fs.promises.rm(tmp, { force: true });
    throw new UserError(`${url}: md5 ${got} does not match the published ${md5} (corrupt or changed download); nothing was cached`);
  }
  await fs.promises.rename(tmp, target);
  return target;
}

/** The cached copy of a published weights file, downloaded (from `weightsBaseUrl` + `spec.urlPath`) and
 *  md5-verified on first use; a cached copy whose md5 no longer matches is downloaded again (as Keras' get_file). */
export async function fetchPretrained(spec: PretrainedFile, opts: PretrainedOptions = {}): Promise<string> {
  const target = path.join(pretrainedCacheDir(opts), spec.file);
  if (fs.existsSync(target)) {
    if ((await md5OfFile(target)) === spec.md5) return target;
    await fs.promises.rm(target, { force: true });
  }
  for (const dir of opts.kerasCacheDirs ?? kerasCacheDirs()) {
    const keras = path.join(dir, spec.file);
    if (fs.existsSync(keras) && fs.statSync(keras).isFile() && (await md5OfFile(keras)) === spec.md5) return keras;
  }
  const base = (opts.weightsBaseUrl ?? process.env.GAPCAM_WEIGHTS_BASE_URL ?? KERAS_WEIGHTS_BASE_URL).replace(/\/?$/, '/');
  (opts.log ?? ((l: string) => process.stderr.write(l + '\n')))(`gapcam: downloading ${base + spec.urlPath} → ${target} (once; md5 ${spec.md5})`);
  return downloadVerified(base + spec.urlPath, target, spec.md5, opts);
}

/** The cached official Keras ImageNet weights file of vgg16/vgg19 (with or without the classifier top). */
export async function fetchImagenetWeights(name: string, includeTop: boolean, opts: PretrainedOptions = {}): Promise<string> {
  if (name !== 'vgg16' && name !== 'vgg19') {
    throw new UserError(`--weights imagenet: Keras publishes ImageNet weights for vgg16 and vgg19 only, not '${name}'; give a .h5 file instead`);
  }
  return fetchPretrained(IMAGENET_WEIGHTS[name][includeTop ? 'top' : 'notop'], opts);
}

/** Loads `weights` ('imagenet' or a Keras .h5 path) into a freshly built VGG. */
export async function applyVggWeights(model: tf.LayersModel, name: string, weights: string,
  opts: PretrainedOptions & { includeTop: boolean; classes?: number }): Promise<LoadKerasWeightsReport> {
  let file = weights;
  if (weights === 'imagenet') {
    if (opts.includeTop && (opts.classes ?? 1000) !== 1000) {
      throw new UserError(`--weights imagenet with the classifier top needs classes = 1000; got ${opts.classes} (build without the top, or cut it with surgery)`);
    }
    file = await fetchImagenetWeights(name, opts.includeTop, opts);
  }
  return loadKerasWeights(model, file, { match: 'name' });
}
