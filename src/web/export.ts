// `gapcam model export <model|run> --web --out DIR`: a static folder that explains the model's decisions in any
// browser, nothing installed, nothing uploaded —
//   index.html           the page (meta embedded), opened from any static server or from file://
//   gapcam-web.js        ONE script: the page + the CLI's CAM code + TensorFlow.js, bundled now (bundle.ts)
//   tfjs-backend-wasm*.wasm   the WASM backend's binaries (WebGL first, then WASM, then CPU)
//   meta.json            classes, preprocessing, input size, CAM layer and head, the box rule
//   model/model.json + group1-shard*.bin   the tfjs Layers model, weights optionally quantised (float16/uint8)
//   model/model-inline.js                  the same model as a script, for file:// (browsers refuse fetch there)
// DIR follows util/out-folder.ts: files staged under temporary names, then renamed into place (meta.json last);
// nothing else in DIR is touched or removed; training checkpoints, model folders and other outputs are refused.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { layersModelFiles, MODEL_JSON, SHARD_NAME, withFreeShardNames } from '../models/layers-io.js';
import { loadModelRef, type LoadModelRefOptions } from '../models/refs.js';
import type { WeightQuantization } from '../models/quantize.js';
import { prepareOutFolder, writeOwnFiles, type OutputOwner, type PreparedOutFolder } from '../util/out-folder.js';
import { DEFAULT_CAM_BOX_FRACTION } from '../cam/box.js';
import { bundlePage, wasmBinaries } from './bundle.js';
import { indexHtml } from './html.js';
import { WEB_INLINE_SCRIPT, WEB_MODEL_DIR, WEB_SCRIPT, type WebMeta } from './meta.js';

export interface WebExportRequest extends LoadModelRefOptions {
  model: string;
  out: string;
  quantization?: WeightQuantization;
  /** The CAM box threshold the page uses (default 0.2, as `gapcam cam`). */
  camThreshold?: number;
}

export interface WebExportResult {
  out: string;
  source: string;
  /** Bytes per written file, relative to `out`. */
  files: Record<string, number>;
  /** Weight bytes as loaded (float32) and as written. */
  weightBytes: { float32: number; written: number };
  weights: WebMeta['web']['weights'];
}

/** What the export owns in its --out folder (util/out-folder.ts): meta.json with a "web" section marks a previous
 *  export (written last; a rerun replaces the files), the other names are refused when something else wrote them. */
export const WEB_OUTPUT: OutputOwner = {
  command: 'gapcam model export --web',
  marker: 'meta.json',
  ownsMarker: (text) => {
    try {
      const j = JSON.parse(text) as { web?: { modelDir?: unknown } };
      return typeof j?.web?.modelDir === 'string';
    } catch {
      return false;
    }
  },
  files: ['index.html', WEB_SCRIPT, `${WEB_MODEL_DIR}/${MODEL_JSON}`, `${WEB_MODEL_DIR}/${WEB_INLINE_SCRIPT}`, ...wasmBinaries().keys()],
  rerun: 'replace',
};

/** Checks (and creates) --out before anything is loaded: a one-line UserError for a file, a training checkpoint, a
 *  model folder or another command's output. */
export function checkWebOut(out: string): PreparedOutFolder {
  return prepareOutFolder(out, WEB_OUTPUT);
}

function weightBytesOf(files: Map<string, string | Uint8Array>): number {
  let n = 0;
  for (const [name, bytes] of files) if (name !== MODEL_JSON) n += bytes.length;
  return n;
}

export async function exportWeb(req: WebExportRequest): Promise<WebExportResult> {
  const prepared = checkWebOut(req.out);
  const camThreshold = req.camThreshold ?? DEFAULT_CAM_BOX_FRACTION;
  if (!(camThreshold >= 0 && camThreshold <= 1)) throw new UserError(`--cam-threshold: expected a fraction in [0, 1], found ${camThreshold}`);
  const loaded = await loadModelRef(req.model, req);
  try {
    if (!loaded.meta) {
      throw new UserError(`model '${req.model}': not CAM-ready (expected conv → GAP → dense softmax or a class-score conv → GAP); make one with \`gapcam model surgery\``);
    }
    const float32 = weightBytesOf(await layersModelFiles(loaded.model));
    // shards under names the previous export's model.json does not list: that model stays whole until it is replaced
    const modelFiles = withFreeShardNames(await layersModelFiles(loaded.model, { quantization: req.quantization }), path.join(prepared.dir, WEB_MODEL_DIR));
    const weights = req.quantization ?? 'float32';
    const meta: WebMeta = {
      ...loaded.meta,
      web: { source: loaded.source, modelDir: WEB_MODEL_DIR, inlineScript: WEB_INLINE_SCRIPT, weights, camThreshold },
    };
    const title = path.basename(loaded.source.replace(/[\\/]+$/, '')) || 'model';
    const files: [string, string | Uint8Array][] = [
      ...[...modelFiles].map(([name, bytes]): [string, string | Uint8Array] => [`${WEB_MODEL_DIR}/${name}`, bytes]),
      [`${WEB_MODEL_DIR}/${WEB_INLINE_SCRIPT}`, inlineModelScript(modelFiles)],
      [WEB_SCRIPT, await bundlePage()],
      ...[...wasmBinaries()].map(([name, file]): [string, Uint8Array] => [name, fs.readFileSync(file)]),
      ['index.html', indexHtml(meta, title)],
      [WEB_OUTPUT.marker, JSON.stringify(meta, null, 2) + '\n'],
    ];
    const previousShards = prepared.rerun ? shardsIn(path.join(prepared.dir, WEB_MODEL_DIR)) : [];
    await fs.promises.mkdir(path.join(prepared.dir, WEB_MODEL_DIR), { recursive: true });
    await writeOwnFiles(prepared, WEB_OUTPUT, files);
    for (const old of previousShards) if (!modelFiles.has(old)) await fs.promises.rm(path.join(prepared.dir, WEB_MODEL_DIR, old), { force: true });
    const sizes: Record<string, number> = {};
    for (const [name, bytes] of files) sizes[name] = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
    return { out: req.out, source: loaded.source, files: sizes, weightBytes: { float32, written: weightBytesOf(modelFiles) }, weights };
  } finally {
    loaded.model.dispose();
  }
}

/** Weight shards of a previous export (tfjs converter names), removed when the new model has fewer. */
function shardsIn(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => SHARD_NAME.test(f)) : [];
}

/** model.json and the weights (base64) in one script defining window.__gapcamInlineModel. */
function inlineModelScript(modelFiles: Map<string, string | Uint8Array>): string {
  const json = JSON.parse(modelFiles.get(MODEL_JSON) as string) as { weightsManifest: { paths: string[] }[] };
  const shards = json.weightsManifest.flatMap((g) => g.paths).map((p) => modelFiles.get(p) as Uint8Array);
  const weights = Buffer.concat(shards.map((s) => Buffer.from(s.buffer, s.byteOffset, s.byteLength))).toString('base64');
  return `window.__gapcamInlineModel=${JSON.stringify({ modelJSON: json, weights })};\n`;
}

const MB = (n: number) => `${(n / 1e6).toFixed(2)} MB`;

/** The lines `gapcam model export --web` prints. */
export function formatWebExport(r: WebExportResult): string {
  const total = Object.values(r.files).reduce((a, b) => a + b, 0);
  const weightLine = r.weights === 'float32'
    ? `weights ${MB(r.weightBytes.written)} (float32)`
    : `weights ${MB(r.weightBytes.written)} (${r.weights}; ${MB(r.weightBytes.float32)} as float32, ${(r.weightBytes.float32 / Math.max(1, r.weightBytes.written)).toFixed(1)}× smaller)`;
  return [
    `exported ${r.source} as a web page: ${path.join(r.out, 'index.html')}`,
    `  ${weightLine}; script ${MB(r.files[WEB_SCRIPT] ?? 0)}; ${Object.keys(r.files).length} files, ${MB(total)} in all`,
    `  open it from any static server (e.g. \`npx http-server ${r.out}\` or \`python3 -m http.server -d ${r.out}\`), or directly from disk`,
  ].join('\n') + '\n';
}
