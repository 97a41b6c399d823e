// `gapcam model export <model|run> --web --out DIR`: a static folder that explains the model's decisions in any
// browser, nothing installed, nothing uploaded —
//   index.html           the page (meta embedded), opened from any static server or from file://
//   gapcam-web.js        ONE script: the page + the CLI's CAM code + TensorFlow.js, bundled now (bundle.ts)
//   tfjs-backend-wasm*.wasm   the WASM backend's binaries (WebGL first, then WASM, then CPU)
//   meta.json            classes, preprocessing, input size, CAM layer and head, the box rule
//   model/model.json + group1-shard*.bin   the tfjs Layers model, weights optionally quantised (float16/uint8)
//   model/model-inline.js                  the same model as a script, for file:// (browsers refuse fetch there)
// Each file is written atomically (temp + rename) into DIR; nothing else in DIR is touched or removed.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { layersModelFiles, MODEL_JSON } from '../models/layers-io.js';
import { loadModelRef, type LoadModelRefOptions } from '../models/refs.js';
import type { WeightQuantization } from '../models/quantize.js';
import { writeFileAtomic } from '../util/atomic.js';
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

/** --out must be a new folder or one that is not a model folder (the export writes meta.json and index.html). */
export function checkWebOut(out: string): void {
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new UserError(`--out ${out}: expected a folder for the web page, found a file`);
    if (fs.existsSync(path.join(out, MODEL_JSON))) {
      throw new UserError(`--out ${out}: is a model folder (has ${MODEL_JSON}); the web export writes meta.json and index.html — choose a new or empty folder`);
    }
  }
}

function weightBytesOf(files: Map<string, string | Uint8Array>): number {
  let n = 0;
  for (const [name, bytes] of files) if (name !== MODEL_JSON) n += bytes.length;
  return n;
}

export async function exportWeb(req: WebExportRequest): Promise<WebExportResult> {
  checkWebOut(req.out);
  const camThreshold = req.camThreshold ?? DEFAULT_CAM_BOX_FRACTION;
  if (!(camThreshold >= 0 && camThreshold <= 1)) throw new UserError(`--cam-threshold: expected a fraction in [0, 1], found ${camThreshold}`);
  const loaded = await loadModelRef(req.model, req);
  try {
    if (!loaded.meta) {
      throw new UserError(`model '${req.model}': not CAM-ready (expected conv → GAP → dense softmax or a class-score conv → GAP); make one with \`gapcam model surgery\``);
    }
    const float32 = weightBytesOf(await layersModelFiles(loaded.model));
    const modelFiles = await layersModelFiles(loaded.model, { quantization: req.quantization });
    const weights = req.quantization ?? 'float32';
    const meta: WebMeta = {
      ...loaded.meta,
      web: { source: loaded.source, modelDir: WEB_MODEL_DIR, inlineScript: WEB_INLINE_SCRIPT, weights, camThreshold },
    };
    const files = new Map<string, string | Uint8Array>();
    for (const [name, bytes] of modelFiles) files.set(`${WEB_MODEL_DIR}/${name}`, bytes);
    files.set(`${WEB_MODEL_DIR}/${WEB_INLINE_SCRIPT}`, inlineModelScript(modelFiles));
    files.set('meta.json', JSON.stringify(meta, null, 2) + '\n');
    files.set(WEB_SCRIPT, await bundlePage());
    for (const [name, file] of wasmBinaries()) files.set(name, fs.readFileSync(file));
    const title = path.basename(loaded.source.replace(/[\\/]+$/, '')) || 'model';
    files.set('index.html', indexHtml(meta, title));
    const sizes: Record<string, number> = {};
    for (const [name, bytes] of files) {
      await writeFileAtomic(path.join(req.out, ...name.split('/')), bytes);
      sizes[name] = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
    }
    return { out: req.out, source: loaded.source, files: sizes, weightBytes: { float32, written: weightBytesOf(modelFiles) }, weights };
  } finally {
    loaded.model.dispose();
  }
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
