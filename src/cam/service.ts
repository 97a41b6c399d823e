// `gapcam cam` as a service: a model + images (a file, a folder, or a dataset split) → per image and requested
// class: overlay PNGs at the original size (with the CAM box and the GT box), an optional top-k strip, optional
// .npy maps, a gallery index.html, cam.json, and optionally faithfulness metrics per method.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import type { Box, ImageRecord, Skip, Split } from '../data/types.js';
import type { ModelMeta } from '../models/types.js';
import type { PreprocessMode } from '../data/types.js';
import { loadModelRef, type LoadedModelRef } from '../models/refs.js';
import { defaultClassNames, inputSizeOf } from '../models/head.js';
import { loadDataset } from '../data/datasets.js';
import { split as splitRecords } from '../data/split.js';
import { isImageFile, naturalCompare } from '../data/util.js';
import { classMapping } from '../eval/evaluate.js';
import { maxIou } from '../eval/boxes.js';
import { UserError } from '../errors.js';
import { closest } from '../util/did-you-mean.js';
import { writeFileAtomic } from '../util/atomic.js';
import { jsonHas, prepareOutFolder, type OutputOwner } from '../util/out-folder.js';
import { writeNpy } from '../util/npy.js';
import { createCamMethod, type MethodName } from './registry.js';
import type { CamMethod } from './methods/base.js';
import { layerTensorsIn } from './split.js';
import { loadCamInput, batchOf, DEFAULT_OVERLAY_SIZE, type CamInput } from './input.js';
import { computeMaps, mapOf } from './computed-maps.js';
import { camBoxes, DEFAULT_CAM_BOX_FRACTION } from './box.js';
import { FaithfulnessAccumulator, type FaithfulnessResult, type FaithfulnessState } from './faithfulness.js';
import { CAM_BOX_COLOR, GT_BOX_COLOR, mapToSize, renderOverlay, renderStrip, type DrawnBox, type StripPanel } from '../render/overlay.js';
import type { ColormapName } from '../render/colormap.js';
import { writeGallery, type GalleryCard, type GalleryInfo } from '../render/gallery.js';
import { shardRange, type ShardSpec } from '../shard/spec.js';
import { partDir, writePart } from '../shard/part.js';
import { idsFingerprint, modelFingerprint, optionsFingerprint } from '../shard/fingerprint.js';
import sharp from 'sharp';

export type NpyMode = 'normalized' | 'raw';

export interface CamRunOptions {
  /** Model folder, checkpoint run, URL or backbone name (as loadModelRef). */
  model: string;
  /** An image file or a folder of images (searched recursively); or use `dataset`. */
  images?: string;
  dataset?: string;
  split?: Split;
  dataRoot?: string;
  /** Methods to run (the first one drives the gallery's IoU and score). Default: cam when the model is CAM-ready,
   *  else gradcam. */
  methods?: MethodName[];
  /** Class tokens: top1, top5, topN, gt, a class id or a class name (default: top1). */
  classes?: string[];
  layer?: string;
  /** Overrides every method's ReLU flag (CAM: off, gradient and score methods: on). */
  relu?: boolean;
  colormap?: ColormapName;
  opacity?: number;
  /** Draw the CAM box and the ground-truth boxes on the overlays (default true). */
  boxes?: boolean;
  /** Write a strip of all requested classes per image (default: when more than one class is requested). */
  strip?: boolean;
  npy?: NpyMode;
  metrics?: boolean;
  /** Deletion/insertion steps (default 32). */
  metricSteps?: number;
  out: string;
  /** Write into a folder holding a previous `gapcam cam` result (cam.json). */
  force?: boolean;
  /** Run only this shard of the images and write its part under `out` (src/shard/). */
  shard?: ShardSpec;
  /** Longest side of the originals, overlays and strips written (default 2048): larger images are shrunk while
   *  decoding and their CAM boxes and IoU computed on that grid (memory stays bounded); cam.json reports boxes and
   *  sizes in the image's own pixels. */
  overlaySize?: number;
  batchSize?: number;
  limit?: number;
  /** Preprocessing for models without meta.json (default 'unit'). */
  preprocessing?: PreprocessMode;
  /** Dataset class → model class overrides for --class gt (see eval's classMapping). */
  classMap?: Record<string, string>;
  /** CAM box, the paper's rule taken literally: keep pixels whose (upsampled, unnormalised) map value is ≥ this
   *  fraction of the map's maximum (default 0.2), box the largest connected component. Taken on raw values, not
   *  min-max normalised ones: a CAM without ReLU (e.g. darknet-tiny's class-score map) has a large negative
   *  background, and min-max normalisation would lift it above 20 % and box the whole image. */
  boxThreshold?: number;
  onProgress?: (done: number, total: number) => void;
  onNote?: (line: string) => void;
}

export interface CamImageResult {
  id: string;
  file: string;
  width: number;
  height: number;
  /** Ground truth: the model class (id, name) the dataset label maps to, the dataset's own class name, boxes. */
  gt?: { classId: number; className: string; datasetClass: string; boxes: Box[] };
  classes: { classId: number; className: string; probability: number; rank: number }[];
  /** Per method: the overlay files (per class, same order as `classes`), the CAM box and IoU of the first class. */
  methods: Record<string, { overlays: string[]; npy?: string[]; camBox?: Box; iou?: number }>;
  strip?: string;
}

export interface CamRunSummary {
  out: string;
  gallery: string;
  images: number;
  skipped: { file: string; reason: string }[];
  methods: { name: MethodName; layer: string; layerChoice: string; relu: boolean }[];
  meanIou?: Record<string, number>;
  /** Fraction of images whose first-class CAM box has IoU ≥ 0.5 with a GT box (when boxes are known). */
  locAccuracy?: Record<string, number>;
  metrics?: Record<string, FaithfulnessResult>;
  seconds: number;
}

interface Item {
  id: string;
  file: string;
  record?: ImageRecord;
}

/** Image files under a folder (recursively), naturally sorted. */
export function listImages(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => naturalCompare(a.name, b.name))) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (isImageFile(e.name)) out.push(p);
    }
  };
  walk(root);
  return out;
}

/** A file-name-safe version of an image id. */
export function safeId(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_');
}

/** A method's name in file names: '+' spelled 'p', so gradcam++ files ('gradcampp') differ from gradcam's. */
export function methodFileName(method: string): string {
  return safeId(method.replace(/\+/g, 'p'));
}

/** Resolves class names (case-insensitive; '_' and ' ' alike) and ids to model class ids. */
export function resolveClassToken(token: string, classNames: readonly string[]): number {
  if (/^\d+$/.test(token)) {
    const id = Number(token);
    if (id >= classNames.length) throw new UserError(`--class ${token}: class id out of range 0..${classNames.length - 1}`);
    return id;
  }
  const key = (s: string) => s.toLowerCase().replace(/[_\s]+/g, ' ').trim();
  const hits = classNames.flatMap((c, i) => (key(c) === key(token) ? [i] : []));
  if (hits.length === 1) return hits[0];
  if (hits.length > 1) throw new UserError(`--class ${token}: ambiguous, the model has ${hits.length} classes of that name (ids ${hits.join(', ')}); give the id`);
  const guess = closest(token, classNames);
  const near = classNames.filter((c) => key(c).includes(key(token)) && c !== guess).slice(0, 5);
  throw new UserError(`--class ${token}: not a class of the model (expected top1, top5, gt, a class id or name${near.length ? `; similar: ${near.join(', ')}` : ''})` +
    (guess ? `; did you mean '${guess}'?` : ''));
}

type ClassToken = { kind: 'top'; k: number } | { kind: 'gt' } | { kind: 'id'; id: number };

export function parseClassTokens(tokens: readonly string[], classNames: readonly string[]): ClassToken[] {
  if (tokens.length === 0) return [{ kind: 'top', k: 1 }];
  return tokens.flatMap((raw) => raw.split(',')).map((t) => t.trim()).filter(Boolean).map((t): ClassToken => {
    const top = /^top(\d+)$/i.exec(t);
    if (top) {
      const k = Number(top[1]);
      if (k < 1 || k > classNames.length) throw new UserError(`--class ${t}: expected top1..top${classNames.length}`);
      return { kind: 'top', k };
    }
    if (t.toLowerCase() === 'gt') return { kind: 'gt' };
    return { kind: 'id', id: resolveClassToken(t, classNames) };
  });
}

async function collectItems(o: CamRunOptions): Promise<{ items: Item[]; datasetClasses?: string[]; loaderSkips?: Skip[] }> {
  if (o.dataset) {
    if (o.images) throw new UserError('give either an image/folder or --dataset, not both');
    // cam skips unreadable images (listed in cam.json), so the loader leaves out missing and empty files too
    const ds = await loadDataset(o.dataset, { dataRoot: o.dataRoot, minClasses: 1, skipBadImages: true });
    const recs = splitRecords(ds, o.split ?? 'test');
    return { items: recs.map((r) => ({ id: r.id, file: r.path, record: r })), datasetClasses: ds.classNames, loaderSkips: ds.skipped };
  }
  if (!o.images) throw new UserError('name an image file, a folder of images, or --dataset NAME');
  if (!fs.existsSync(o.images)) throw new UserError(`image or folder not found: ${o.images}`);
  if (fs.statSync(o.images).isDirectory()) {
    const files = listImages(o.images);
    if (files.length === 0) throw new UserError(`no image files (${'.jpg .png .webp …'}) found under ${o.images}`);
    return { items: files.map((f) => ({ id: path.relative(o.images as string, f).replace(/\.[^.]+$/, ''), file: f })) };
  }
  return { items: [{ id: path.basename(o.images).replace(/\.[^.]+$/, ''), file: o.images }] };
}

/** An inclusive pixel box scaled by (sx, sy) about pixel edges (identity when both are 1). */
function scaleBox(b: Box, sx: number, sy: number): Box {
  if (sx === 1 && sy === 1) return b;
  return [(b[0] + 0.5) * sx - 0.5, (b[1] + 0.5) * sy - 0.5, (b[2] + 0.5) * sx - 0.5, (b[3] + 0.5) * sy - 0.5];
}

/** What `gapcam cam` owns in its --out folder: cam.json, index.html and the files under originals/, overlays/,
 *  strips/ and maps/ named after the images. A folder holding a previous result (cam.json) is written into only with
 *  --force (its files of images not in this run stay; index.html and cam.json list this run's). */
export const CAM_OUTPUT: OutputOwner = {
  command: 'gapcam cam',
  marker: 'cam.json',
  ownsMarker: jsonHas('kind', 'cam'),
  files: ['index.html'],
  rerun: 'refuse',
};

/** Runs CAM emission end to end (see CamRunOptions); writes into `out`. */
export async function runCam(o: CamRunOptions): Promise<CamRunSummary> {
  const started = Date.now();
  // a shard writes only its own part folder under --out (`gapcam merge` writes the gallery there later)
  if (o.shard) return runCamShard(o, o.shard, started);
  prepareOutFolder(o.out, CAM_OUTPUT, { force: o.force });
  const loaded = await loadModelRef(o.model, { preprocessing: o.preprocessing });
  try {
    return await runWithModel(o, loaded, started);
  } finally {
    loaded.model.dispose();
  }
}

async function runWithModel(o: CamRunOptions, loaded: LoadedModelRef, started: number, selected?: Awaited<ReturnType<typeof collectItems>>): Promise<CamRunSummary> {
  const note = o.onNote ?? (() => undefined);
  const model = loaded.model;
  const inputSize: [number, number] = loaded.meta?.inputSize ?? inputSizeOf(model);
  const numClasses = model.outputs[0].shape[model.outputs[0].shape.length - 1] as number;
  const classNames = loaded.meta?.classNames ?? defaultClassNames(numClasses);
  const preprocessing: PreprocessMode = o.preprocessing ?? loaded.preprocessing;
  const meta: ModelMeta | undefined = loaded.meta;

  const methodNames: MethodName[] = o.methods?.length ? [...new Set(o.methods)] : [meta ? 'cam' : 'gradcam'];
  const methods: CamMethod[] = methodNames.map((name) => createCamMethod(name, { model, meta }, { layer: o.layer, relu: o.relu }));
  for (const m of methods) {
    const how = m.layerChoice === 'auto' ? 'chosen automatically: the last layer with a 4-D output' : m.layerChoice === 'flag' ? 'from --layer' : "the model's CAM feature layer";
    note(`${m.name}: layer '${m.layer}' (${how})${m.relu ? ', ReLU on' : ''}`);
    if (m.flags.maskedForward) {
      const shape = layerTensorsIn(model, m.layer)?.outputs[0]?.shape ?? [];
      const channels = shape[shape.length - 1] ?? 0;
      if (channels > 256) note(`${m.name}: ${channels} channels at '${m.layer}' = ${channels} masked forward passes per image; an earlier, narrower layer (--layer) is much faster`);
    }
  }

  const { items: allItems, datasetClasses, loaderSkips } = selected ?? await collectItems(o);
  const items = o.limit !== undefined && !selected ? allItems.slice(0, Math.max(0, o.limit)) : allItems;
  const tokens = parseClassTokens(o.classes ?? [], classNames);
  const needsGt = tokens.some((t) => t.kind === 'gt');
  let labelToModel: number[] | undefined;
  if (datasetClasses) {
    try {
      labelToModel = classMapping(datasetClasses, classNames, o.classMap);
    } catch (err) {
      if (needsGt) throw err;
    }
  } else if (needsGt) {
    throw new UserError('--class gt: needs --dataset (images given as files carry no labels)');
  }
  const gtOf = (it: Item): number | undefined => (it.record && labelToModel ? labelToModel[it.record.label] : undefined);

  const out = path.resolve(o.out);
  for (const sub of ['originals', 'overlays']) await fs.promises.mkdir(path.join(out, sub), { recursive: true });
  const colormap = o.colormap ?? 'jet';
  const opacity = o.opacity ?? 0.5;
  const drawBoxes = o.boxes ?? true;
  const batchSize = Math.max(1, o.batchSize ?? 8);
  const overlaySize = o.overlaySize ?? DEFAULT_OVERLAY_SIZE;
  if (!Number.isInteger(overlaySize) || overlaySize < 16) throw new UserError(`--overlay-size: expected a whole number of pixels ≥ 16, found ${overlaySize}`);
  const [H, W] = inputSize;
  const results: CamImageResult[] = [];
  const cards: GalleryCard[] = [];
  const skipped: { file: string; reason: string }[] = [...(loaderSkips ?? [])];
  for (const k of loaderSkips ?? []) note(`skipped ${k.file}: ${k.reason}`);
  const faith = o.metrics ? methods.map((m) => new FaithfulnessAccumulator((x) => m.probabilities(x), { steps: o.metricSteps })) : undefined;
  const iouSums: Record<string, { sum: number; hits: number; n: number }> = {};
  const usedIds = new Set<string>();
  let done = 0;

  for (let start = 0; start < items.length; start += batchSize) {
    const chunk = items.slice(start, start + batchSize);
    const loadedInputs = await Promise.all(chunk.map((it) => loadCamInput(it.file, inputSize, preprocessing, overlaySize).catch((err: unknown) => {
      if (err instanceof UserError) {
        skipped.push({ file: it.file, reason: err.message });
        note(`skipped ${it.file}: ${err.message}`);
        return undefined;
      }
      throw err;
    })));
    const batchItems = chunk.filter((_, i) => loadedInputs[i]);
    const inputs = loadedInputs.filter((x): x is CamInput => !!x);
    if (inputs.length === 0) {
      done += chunk.length;
      o.onProgress?.(done, items.length);
      continue;
    }
    const x = batchOf(inputs, inputSize);
    try {
      const gts = batchItems.map(gtOf);
      // Class ids per image from the logits of the first method's pass (all methods share the model).
      const select = (logits: tf.Tensor2D): number[][] => {
        const rows = logits.arraySync();
        return rows.map((row, i) => {
          const order = [...row.keys()].sort((a, b) => row[b] - row[a]);
          return tokens.flatMap((t) => {
            if (t.kind === 'top') return order.slice(0, t.k);
            if (t.kind === 'id') return [t.id];
            const g = gts[i];
            if (g === undefined || g < 0) throw new UserError(`--class gt: image ${batchItems[i].file} has no label the model knows`);
            return [g];
          });
        });
      };
      const perMethod = methods.map((m) => computeMaps(m, x, select, inputSize));
      const first = perMethod[0];

      const base = results.length;
      await Promise.all(inputs.map(async (_, i) => {
        const it = batchItems[i];
        const img = inputs[i].original;
        const full = inputs[i].fullSize;
        // boxes are in the image's own pixels; the picture may be shrunk (--overlay-size)
        const toPicture = (b: Box): Box => scaleBox(b, img.width / full.width, img.height / full.height);
        const fromPicture = (b: Box): Box => scaleBox(b, full.width / img.width, full.height / img.height);
        let sid = safeId(it.id);
        while (usedIds.has(sid)) sid += '_';
        usedIds.add(sid);
        const origRel = path.join('originals', `${sid}.jpg`);
        await writeFileAtomic(path.join(out, origRel), await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
        const ids = first.classIds[i];
        const uniq = [...new Set(ids)];
        const colOf = (c: number) => ids.indexOf(c);
        const logitsRow = first.logits[i];
        const rankOf = (c: number) => logitsRow.filter((v) => v > logitsRow[c]).length + 1;
        const gtId = gtOf(it);
        const gtBoxes = it.record?.boxes ?? [];
        const result: CamImageResult = {
          id: it.id, file: it.file, width: full.width, height: full.height,
          ...(gtId !== undefined && gtId >= 0 && it.record ? { gt: { classId: gtId, className: classNames[gtId], datasetClass: datasetClasses?.[it.record.label] ?? classNames[gtId], boxes: gtBoxes } } : {}),
          classes: uniq.map((c) => ({ classId: c, className: classNames[c], probability: first.probs[i][c], rank: rankOf(c) })),
          methods: {},
        };
        const overlaysForCard: { label: string; path: string }[] = [];
        for (let mi = 0; mi < perMethod.length; mi++) {
          const pm = perMethod[mi];
          const mname = pm.method.name;
          const entry: CamImageResult['methods'][string] = { overlays: [] };
          const stripPanels: StripPanel[] = [];
          for (let u = 0; u < uniq.length; u++) {
            const c = uniq[u];
            const j = colOf(c);
            const { h, w } = pm;
            const { raw, rawAtInput, atInput } = mapOf(pm, i, j);
            const atImage = mapToSize(raw, h, w, img.width, img.height);
            const boxes: DrawnBox[] = [];
            // found on the picture's grid (the image's own up to --overlay-size), reported in the image's pixels
            const camBoxesAtPicture = camBoxes({ data: rawAtInput, width: W, height: H }, inputSize, img, { fraction: o.boxThreshold ?? DEFAULT_CAM_BOX_FRACTION });
            const camBoxList = camBoxesAtPicture.map(fromPicture);
            const iou = maxIou(camBoxList, gtBoxes);
            if (u === 0) {
              if (camBoxList[0]) entry.camBox = camBoxList[0];
              if (gtBoxes.length) {
                entry.iou = iou;
                const s = (iouSums[mname] ??= { sum: 0, hits: 0, n: 0 });
                s.sum += iou;
                s.hits += iou >= 0.5 ? 1 : 0;
                s.n += 1;
              }
              if (faith) {
                const xi = x.slice(i, 1) as tf.Tensor4D;
                faith[mi].add(xi, atInput, c);
                xi.dispose();
              }
            }
            if (drawBoxes) {
              for (const b of gtBoxes) boxes.push({ box: toPicture(b), color: GT_BOX_COLOR });
              for (const b of camBoxesAtPicture) boxes.push({ box: b, color: CAM_BOX_COLOR });
            }
            const rel = path.join('overlays', `${sid}__${methodFileName(mname)}__${c}_${safeId(classNames[c])}.png`);
            await writeFileAtomic(path.join(out, rel), await renderOverlay(img, atImage, { colormap, opacity, boxes }));
            entry.overlays.push(rel);
            if (u === 0) overlaysForCard.push({ label: mname, path: rel });
            if (o.npy) {
              const npyRel = path.join('maps', `${sid}__${methodFileName(mname)}__${c}.npy`);
              if (o.npy === 'raw') await writeNpy(path.join(out, npyRel), raw, [h, w]);
              else await writeNpy(path.join(out, npyRel), atInput, [H, W]);
              (entry.npy ??= []).push(npyRel);
            }
            stripPanels.push({ map: atImage, label: `${classNames[c]}`, score: pm.probs[i][c] });
          }
          result.methods[mname] = entry;
          const wantStrip = o.strip ?? uniq.length > 1;
          if (wantStrip && mi === 0) {
            const stripRel = path.join('strips', `${sid}__${methodFileName(mname)}.png`);
            await writeFileAtomic(path.join(out, stripRel), await renderStrip(img, stripPanels.slice(0, 5), { colormap, opacity }));
            result.strip = stripRel;
          }
        }
        results[base + i] = result;
        const c0 = uniq[0];
        cards[base + i] = {
          id: it.id,
          original: origRel,
          overlays: overlaysForCard,
          ...(result.strip ? { strip: result.strip } : {}),
          className: classNames[c0],
          score: first.probs[i][c0],
          rank: rankOf(c0),
          ...(result.gt ? { gtClass: result.gt.datasetClass === result.gt.className ? result.gt.className : `${result.gt.datasetClass} (model class ${result.gt.className})` } : {}),
          ...(result.methods[first.method.name].iou !== undefined ? { iou: result.methods[first.method.name].iou } : {}),
        };
      }));
    } finally {
      x.dispose();
    }
    done += chunk.length;
    o.onProgress?.(done, items.length);
  }

  if (results.length === 0) throw new UserError(`no image could be read (${skipped.length} skipped; first: ${skipped[0]?.reason ?? '-'})`);
  const metrics = faith ? Object.fromEntries(methods.map((m, i) => [m.name, faith[i].result()])) : undefined;
  const meanIou = Object.keys(iouSums).length ? Object.fromEntries(Object.entries(iouSums).map(([k, v]) => [k, v.sum / v.n])) : undefined;
  const locAccuracy = Object.keys(iouSums).length ? Object.fromEntries(Object.entries(iouSums).map(([k, v]) => [k, v.hits / v.n])) : undefined;
  const methodInfo = methods.map((m) => ({ name: m.name as MethodName, layer: m.layer, layerChoice: m.layerChoice, relu: m.relu }));
  const notes = camNotes(methodInfo.map((m) => m.name), meanIou, locAccuracy, metrics);
  const galleryInfo: GalleryInfo = {
    title: `gapcam CAMs — ${path.basename(loaded.source)}`,
    facts: [
      ['model', loaded.source],
      ['method', methodInfo.map((m) => `${m.name} @ ${m.layer}`).join(', ')],
      ['classes', (o.classes?.length ? o.classes : ['top1']).join(' ')],
      ['colormap', colormap],
      ['boxes', drawBoxes ? 'green = CAM box, red = ground truth' : 'off'],
    ],
    notes,
  };
  const gallery = await writeGallery(out, galleryInfo, cards);
  const summary: CamRunSummary = {
    out, gallery, images: results.length, skipped, methods: methodInfo,
    ...(meanIou ? { meanIou, locAccuracy } : {}),
    ...(metrics ? { metrics } : {}),
    seconds: (Date.now() - started) / 1000,
  };
  await writeFileAtomic(path.join(out, 'cam.json'), JSON.stringify({
    tool: 'gapcam', kind: 'cam', createdAt: new Date().toISOString(),
    model: { source: loaded.source, kind: loaded.kind, inputSize, preprocessing, numClasses, headKind: meta?.headKind },
    options: {
      images: o.images, dataset: o.dataset, split: o.dataset ? (o.split ?? 'test') : undefined, classes: o.classes ?? ['top1'],
      colormap, opacity, boxes: drawBoxes, npy: o.npy, metrics: !!o.metrics, limit: o.limit, boxThreshold: o.boxThreshold ?? DEFAULT_CAM_BOX_FRACTION, boxRule: 'value ≥ fraction · max of the raw map (paper), largest component',
      upsampling: 'bilinear, half-pixel centres', normalisation: 'min-max per map',
    },
    summary,
    images: results,
    // what `gapcam merge` needs to join the parts of a sharded run: the gallery and the faithfulness sums
    gallery: { info: galleryInfo, cards },
    ...(faith ? { faithfulness: Object.fromEntries(methods.map((m, i) => [m.name, faith[i].state()])) } : {}),
  } satisfies CamReport, null, 1) + '\n');
  return summary;
}

/** The gallery's summary lines: localization against the GT boxes and faithfulness, per method. */
export function camNotes(methods: readonly string[], meanIou?: Record<string, number>, locAccuracy?: Record<string, number>, metrics?: Record<string, FaithfulnessResult>): string[] {
  const notes: string[] = [];
  if (meanIou && locAccuracy) for (const m of methods) notes.push(`${m}: mean IoU ${meanIou[m].toFixed(3)}, IoU ≥ 0.5 for ${(100 * locAccuracy[m]).toFixed(1)} % of images`);
  if (metrics) {
    for (const [name, r] of Object.entries(metrics)) {
      notes.push(`${name}: average drop ${r.averageDrop.toFixed(2)} %, increase in confidence ${r.increaseInConfidence.toFixed(1)} %, deletion AUC ${r.deletionAuc.toFixed(4)} (lower is better), insertion AUC ${r.insertionAuc.toFixed(4)} (higher is better)`);
    }
  }
  return notes;
}

/** cam.json. */
export interface CamReport {
  tool: 'gapcam';
  kind: 'cam';
  createdAt: string;
  model: Record<string, unknown> & { source: string };
  options: Record<string, unknown>;
  summary: CamRunSummary;
  images: CamImageResult[];
  gallery: { info: GalleryInfo; cards: GalleryCard[] };
  faithfulness?: Record<string, FaithfulnessState>;
}

/** One shard of a CAM run (o.shard): its images' overlays, gallery and cam.json, as a part under o.out. */
async function runCamShard(o: CamRunOptions, spec: ShardSpec, started: number): Promise<CamRunSummary> {
  const collected = await collectItems(o);
  const items = o.limit !== undefined ? collected.items.slice(0, Math.max(0, o.limit)) : collected.items;
  const { start, end } = shardRange(items.length, spec);
  const mine = items.slice(start, end);
  if (mine.length === 0) throw new UserError(`shard ${spec.index} of ${spec.count}: no image (${items.length} images in ${spec.count} shards); use fewer shards`);
  const loaded = await loadModelRef(o.model);
  try {
    const ids = mine.map((it) => it.id);
    const { shard: _s, out: _o, onProgress: _p, onNote: _n, batchSize: _b, force: _f, dataRoot: _d, ...options } = o;
    let summary: CamRunSummary | undefined;
    await writePart(o.out, spec, {
      kind: 'cam',
      images: { total: items.length, start, end, count: ids.length, firstId: ids[0] ?? null, lastId: ids[ids.length - 1] ?? null, idsSha256: idsFingerprint(ids) },
      fingerprint: {
        model: modelFingerprint(loaded.source),
        dataset: idsFingerprint(items.map((it) => `${it.id}\t${it.record ? `${it.record.label}\t${it.record.boxes.join(';')}` : path.basename(it.file)}`)),
        options: optionsFingerprint({ kind: 'cam', ...options, model: undefined, images: undefined, dataset: undefined }),
      },
      settings: { ...options },
    }, async (tmp) => {
      // images the dataset loader left out are listed once, by shard 0 (every shard loads the whole dataset)
      summary = await runWithModel({ ...o, out: tmp }, loaded, started, { ...collected, items: mine, loaderSkips: spec.index === 0 ? collected.loaderSkips : [] });
      // cam.json names where the part will be, not the temporary folder it was written in
      summary = { ...summary, out: partDir(o.out, spec), gallery: path.join(partDir(o.out, spec), 'index.html') };
      const report = JSON.parse(await fs.promises.readFile(path.join(tmp, 'cam.json'), 'utf8')) as CamReport;
      await writeFileAtomic(path.join(tmp, 'cam.json'), JSON.stringify({ ...report, summary }, null, 1) + '\n');
      return ['cam.json', 'index.html'];
    });
    return summary as CamRunSummary;
  } finally {
    loaded.model.dispose();
  }
}
