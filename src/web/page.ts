// The script of the page `gapcam model export --web` writes, bundled with TensorFlow.js at export time (esbuild,
// src/web/bundle.ts). It runs in the browser: no Node imports here or in anything it imports. Everything numeric is
// the CLI's own code — resize and preprocessing (src/data), the CAM method and the map arithmetic
// (src/cam/computed-maps.ts), the box rule (src/cam/box.ts, src/eval), colormap and blending (src/render/blend.ts) — so that the
// page shows what `gapcam cam` writes. window.__gapcam exposes the state as numbers (read by the export test).
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { Box } from '../data/types.js';
import type { CamModel } from '../models/types.js';
import { preprocessPixels } from '../data/preprocess.js';
import { resizeRgbLanczos3 } from '../data/resize.js';
import { createCamMethod } from '../cam/registry.js';
import type { CamMethod } from '../cam/methods/base.js';
import { topKSelection } from '../cam/class-maps.js';
import { computeMaps, mapOf, type OneMap } from '../cam/computed-maps.js';
import { camBox } from '../cam/box.js';
import { CAM_BOX_COLOR, blend, drawBoxes, mapToSize } from '../render/blend.js';
import { COLORMAP_NAMES, type ColormapName } from '../render/colormap.js';
import type { WebMeta } from './meta.js';

const BACKENDS = ['webgl', 'wasm', 'cpu'] as const;
const TOP_K = 5;

interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

interface ClassRow {
  classId: number;
  className: string;
  probability: number;
}

/** What the page shows, as plain numbers (window.__gapcam). */
interface PageState {
  status: 'loading' | 'ready' | 'busy' | 'error';
  error?: string;
  backend?: string;
  meta?: WebMeta;
  image?: { name: string; width: number; height: number };
  top?: ClassRow[];
  selected?: number;
  /** The selected class's maps: raw at the layer's resolution, normalised at the input size, and its CAM box. */
  map?: { classId: number; h: number; w: number; raw: number[]; atInput: number[]; box: Box | null };
  /** The model input before preprocessing (RGB bytes at the input size), for checking the preprocessing. */
  inputRgb?: () => number[];
  /** tf.memory().numTensors, to check that analysing images leaks nothing. */
  tensors: () => number;
}

const state: PageState = { status: 'loading', tensors: () => tf.memory().numTensors };
(window as unknown as { __gapcam: PageState }).__gapcam = state;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function setStatus(text: string): void {
  $('status').textContent = text;
}

function fail(err: unknown): void {
  const msg = err instanceof Error ? err.message : String(err);
  state.status = 'error';
  state.error = msg;
  setStatus(`error: ${msg}`);
}

function readMeta(): WebMeta {
  const el = document.getElementById('gapcam-meta');
  if (!el?.textContent) throw new Error('the page has no embedded meta (re-export it with gapcam model export --web)');
  return JSON.parse(el.textContent) as WebMeta;
}

/** Backend order: ?backend=NAME first when given, then WebGL, WASM, CPU; the first that runs a test op wins. */
async function chooseBackend(): Promise<string> {
  setWasmPaths(new URL('./', location.href).href);
  const asked = new URLSearchParams(location.search).get('backend');
  const order = asked ? [asked, ...BACKENDS.filter((b) => b !== asked)] : [...BACKENDS];
  for (const name of order) {
    try {
      if (!(await tf.setBackend(name))) continue;
      await tf.ready();
      const two = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(1)).dataSync()[0]);
      if (two === 2) return name;
    } catch {
      // not available here (no WebGL, wasm fetch blocked on file://, …): try the next one
    }
  }
  throw new Error('no TensorFlow.js backend works in this browser');
}

function loadScript(src: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = () => resolve();
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(s);
  });
}

function base64Bytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Over http(s) the tfjs model folder; from file:// (where browsers refuse fetch) the same model from a script. */
async function loadModel(meta: WebMeta): Promise<tf.LayersModel> {
  if (location.protocol !== 'file:') return tf.loadLayersModel(`${meta.web.modelDir}/model.json`);
  await loadScript(`${meta.web.modelDir}/${meta.web.inlineScript}`);
  const inline = (window as unknown as { __gapcamInlineModel?: { modelJSON: tf.io.ModelJSON; weights: string } }).__gapcamInlineModel;
  if (!inline) throw new Error(`${meta.web.inlineScript} did not define the model`);
  const bytes = base64Bytes(inline.weights);
  return tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: inline.modelJSON.modelTopology,
    weightSpecs: inline.modelJSON.weightsManifest.flatMap((g) => g.weights),
    weightData: bytes.buffer as ArrayBuffer,
  }));
}

/** Decodes an image as `gapcam cam` does: EXIF orientation applied, transparency flattened onto white, 8-bit RGB. */
async function decode(source: Blob | HTMLVideoElement): Promise<RgbImage> {
  let bitmap: ImageBitmap | HTMLVideoElement;
  let width: number;
  let height: number;
  if (source instanceof Blob) {
    try {
      bitmap = await createImageBitmap(source, { imageOrientation: 'from-image', premultiplyAlpha: 'none' });
    } catch {
      bitmap = await createImageBitmap(source);
    }
    width = bitmap.width;
    height = bitmap.height;
  } else {
    bitmap = source;
    width = source.videoWidth;
    height = source.videoHeight;
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true }) as CanvasRenderingContext2D;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0);
  if ('close' in bitmap) bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    data[j] = rgba[i];
    data[j + 1] = rgba[i + 1];
    data[j + 2] = rgba[i + 2];
  }
  return { data, width, height };
}

interface Analysis {
  image: RgbImage;
  name: string;
  top: ClassRow[];
  maps: Map<number, OneMap & { h: number; w: number; atImage?: Float32Array; box: Box | null }>;
}

let cam: CamModel;
let method: CamMethod;
let analysis: Analysis | undefined;

function analyse(image: RgbImage, name: string): Analysis {
  const meta = cam.meta;
  const [H, W] = meta.inputSize;
  const resized = resizeRgbLanczos3(image.data, image.width, image.height, W, H);
  state.inputRgb = () => Array.from(resized);
  const x = tf.tensor4d(preprocessPixels(resized, meta.preprocessing), [1, H, W, 3]);
  try {
    const k = Math.min(TOP_K, meta.classNames.length);
    const c = computeMaps(method, x, topKSelection(k), [H, W]);
    const ids = c.classIds[0];
    const top = ids.map((id) => ({ classId: id, className: meta.classNames[id], probability: c.probs[0][id] }));
    const maps: Analysis['maps'] = new Map();
    ids.forEach((id, j) => {
      const one = mapOf(c, 0, j);
      maps.set(id, { ...one, h: c.h, w: c.w, box: camBox({ data: one.rawAtInput, width: W, height: H }, [H, W], image, { fraction: (meta as WebMeta).web.camThreshold }) ?? null });
    });
    return { image, name, top, maps };
  } finally {
    x.dispose();
  }
}

function render(): void {
  if (!analysis || state.selected === undefined) return;
  const m = analysis.maps.get(state.selected);
  if (!m) return;
  const { image } = analysis;
  m.atImage ??= mapToSize(m.raw, m.h, m.w, image.width, image.height);
  const opacity = Number(($('opacity') as HTMLInputElement).value) / 100;
  const colormap = ($('colormap') as HTMLSelectElement).value as ColormapName;
  const pixels = blend(image, m.atImage, colormap, opacity);
  if (m.box && ($('show-box') as HTMLInputElement).checked) drawBoxes(pixels, image.width, image.height, [{ box: m.box, color: CAM_BOX_COLOR }]);
  const canvas = $('overlay') as HTMLCanvasElement;
  canvas.width = image.width;
  canvas.height = image.height;
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  const out = ctx.createImageData(image.width, image.height);
  for (let i = 0, j = 0; j < pixels.length; i += 4, j += 3) {
    out.data[i] = pixels[j];
    out.data[i + 1] = pixels[j + 1];
    out.data[i + 2] = pixels[j + 2];
    out.data[i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  const box = m.box ? m.box.map((v) => Math.round(v)).join(', ') : 'none (no pixel reaches the threshold)';
  $('box').textContent = `CAM box [x0, y0, x1, y1]: ${box}`;
  state.map = { classId: state.selected, h: m.h, w: m.w, raw: Array.from(m.raw), atInput: Array.from(m.atInput), box: m.box };
  for (const li of Array.from(document.querySelectorAll<HTMLElement>('#classes li'))) li.classList.toggle('on', Number(li.dataset.id) === state.selected);
}

function showClasses(top: ClassRow[]): void {
  const list = $('classes');
  list.replaceChildren();
  for (const row of top) {
    const li = document.createElement('li');
    li.dataset.id = String(row.classId);
    li.tabIndex = 0;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = row.className;
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${Math.max(1, Math.round(row.probability * 100))}%`;
    const p = document.createElement('span');
    p.className = 'p';
    p.textContent = `${(row.probability * 100).toFixed(1)} %`;
    li.append(name, p, bar);
    const pick = () => {
      state.selected = row.classId;
      render();
    };
    li.addEventListener('click', pick);
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') pick(); });
    list.appendChild(li);
  }
}

async function run(source: Blob | HTMLVideoElement, name: string): Promise<void> {
  if (!cam) return;
  state.status = 'busy';
  setStatus(`analysing ${name} …`);
  try {
    const image = await decode(source);
    await new Promise((r) => setTimeout(r, 0)); // let the status paint before the synchronous work
    analysis = analyse(image, name);
    state.image = { name, width: image.width, height: image.height };
    state.top = analysis.top;
    state.selected = analysis.top[0].classId;
    showClasses(analysis.top);
    render();
    $('result').hidden = false;
    state.status = 'ready';
    setStatus(`${name} (${image.width}×${image.height})`);
  } catch (err) {
    fail(err);
  }
}

function download(): void {
  if (!analysis || state.selected === undefined) return;
  const canvas = $('overlay') as HTMLCanvasElement;
  const cls = cam.meta.classNames[state.selected].replace(/[^A-Za-z0-9._-]+/g, '_');
  const base = analysis.name.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9._-]+/g, '_');
  canvas.toBlob((blob) => {
    if (!blob) return;
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `${base}__cam__${cls}.png`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }, 'image/png');
}

async function startCamera(): Promise<void> {
  const video = $('camera') as HTMLVideoElement;
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' } });
    await video.play();
    $('camera-box').hidden = false;
  } catch (err) {
    setStatus(`camera: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function wire(): void {
  const pick = $('file') as HTMLInputElement;
  pick.addEventListener('change', () => { if (pick.files?.[0]) void run(pick.files[0], pick.files[0].name); });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const f = e.dataTransfer?.files?.[0];
    if (f) void run(f, f.name);
  });
  $('opacity').addEventListener('input', render);
  $('colormap').addEventListener('change', render);
  $('show-box').addEventListener('change', render);
  $('download').addEventListener('click', download);
  $('camera-start').addEventListener('click', () => void startCamera());
  $('camera-shoot').addEventListener('click', () => void run($('camera') as HTMLVideoElement, 'camera'));
  const select = $('colormap') as HTMLSelectElement;
  for (const name of COLORMAP_NAMES) select.add(new Option(name, name));
  if (!navigator.mediaDevices?.getUserMedia) $('camera-start').hidden = true;
}

async function main(): Promise<void> {
  wire();
  const meta = readMeta();
  state.meta = meta;
  setStatus('starting TensorFlow.js …');
  const backend = await chooseBackend();
  state.backend = backend;
  $('backend').textContent = backend === 'webgl' ? 'WebGL' : backend === 'wasm' ? 'WASM' : 'CPU';
  setStatus('loading the model …');
  const model = await loadModel(meta);
  cam = { model, meta };
  method = createCamMethod('cam', cam);
  state.status = 'ready';
  setStatus('drop or pick an image');
}

main().catch(fail);
