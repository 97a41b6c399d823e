// TensorBoard logging of a training run: a metrics sink writing event files into the run folder, so that
// `tensorboard --logdir checkpoints/` shows every run under its name. Per step: batch/loss, batch/accuracy, batch/lr,
// batch/images_per_sec (step = global step). Per epoch (step = epoch number): epoch/loss, epoch/accuracy,
// epoch/val_loss, epoch/val_accuracy, epoch/lr, epoch/images_per_sec; a histogram of every weight of the head the
// GAP surgery added (head/<layer>/<weight>); and the CAM of the true class over a few fixed validation images
// (cam/<image id>), drawn as `gapcam cam` draws them (same input resize, same half-pixel upsampling, jet colormap).
import * as tf from '@tensorflow/tfjs';
import { batchOf, loadCamInput, resizeRgb, type CamInput } from '../cam/input.js';
import { classActivationMaps } from '../cam/class-maps.js';
import type { DecodedImage } from '../data/image.js';
import type { ImageRecord } from '../data/types.js';
import type { CamModel } from '../models/types.js';
import { mapToSize, renderOverlay } from '../render/overlay.js';
import { EventFileWriter, histogramOf, type SummaryValue } from '../util/event-file.js';
import type { MetricsRow, MetricsSink } from './metrics.js';

/** How many validation images get a CAM picture per epoch, and the longest side of those pictures. */
export const TENSORBOARD_CAM_IMAGES = 4;
const CAM_PICTURE_SIDE = 256;

/** Up to `n` records spread over the classes (round-robin over the classes, each class in id order): fixed for the
 *  whole run, so the pictures of successive epochs show the same images. */
export function pickCamRecords(records: readonly ImageRecord[], n = TENSORBOARD_CAM_IMAGES): ImageRecord[] {
  const byClass = new Map<number, ImageRecord[]>();
  for (const r of [...records].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    if (!byClass.has(r.label)) byClass.set(r.label, []);
    byClass.get(r.label)!.push(r);
  }
  const lists = [...byClass.entries()].sort((a, b) => a[0] - b[0]).map(([, list]) => list);
  const out: ImageRecord[] = [];
  for (let i = 0; out.length < n && lists.some((l) => i < l.length); i++) {
    for (const l of lists) if (i < l.length && out.length < n) out.push(l[i]);
  }
  return out;
}

interface CamPicture {
  record: ImageRecord;
  input: CamInput;
  thumb: DecodedImage;
}

export interface TensorBoardSinkOptions {
  runDir: string;
  /** The model being trained (read at the end of each epoch). */
  cam: CamModel;
  /** Layers whose weights get histograms (the head the surgery added). */
  headLayers: readonly string[];
  /** Images whose CAM is drawn each epoch (see pickCamRecords). */
  camRecords?: readonly ImageRecord[];
}

export class TensorBoardSink implements MetricsSink {
  private constructor(private readonly writer: EventFileWriter, private readonly opts: TensorBoardSinkOptions,
    private readonly pictures: CamPicture[]) {}

  /** Opens a new event file in the run folder and decodes the CAM images once. */
  static async create(opts: TensorBoardSinkOptions): Promise<TensorBoardSink> {
    const { inputSize, preprocessing } = opts.cam.meta;
    const pictures: CamPicture[] = [];
    if (inputSize) {
      for (const record of opts.camRecords ?? []) {
        // A picture that cannot be made is left out: TensorBoard pictures never stop a training run.
        const input = await loadCamInput(record.path, inputSize, preprocessing).catch(() => undefined);
        if (!input) continue;
        const scale = Math.min(1, CAM_PICTURE_SIDE / Math.max(input.original.width, input.original.height));
        const width = Math.max(1, Math.round(input.original.width * scale));
        const height = Math.max(1, Math.round(input.original.height * scale));
        pictures.push({ record, input, thumb: { data: await resizeRgb(input.original, width, height), width, height } });
      }
    }
    return new TensorBoardSink(new EventFileWriter(opts.runDir), opts, pictures);
  }

  get file(): string {
    return this.writer.file;
  }

  async row(row: MetricsRow): Promise<void> {
    if (row.kind === 'step') {
      this.writer.scalars(row.step, { 'batch/loss': row.loss, 'batch/accuracy': row.acc, 'batch/lr': row.lr, 'batch/images_per_sec': row.imagesPerSec });
      return;
    }
    this.writer.scalars(row.epoch, {
      'epoch/loss': row.loss, 'epoch/accuracy': row.acc, 'epoch/val_loss': row.valLoss, 'epoch/val_accuracy': row.valAcc,
      'epoch/lr': row.lr, 'epoch/images_per_sec': row.imagesPerSec,
    });
    this.writer.write(row.epoch, await this.headHistograms());
    this.writer.write(row.epoch, await this.camPictures());
  }

  private async headHistograms(): Promise<SummaryValue[]> {
    const values: SummaryValue[] = [];
    for (const name of this.opts.headLayers) {
      for (const w of this.opts.cam.model.getLayer(name).weights) {
        const data = await w.read().data();
        values.push({ tag: `head/${name}/${w.originalName.split('/').pop()}`, kind: 'histogram', histogram: histogramOf(data) });
      }
    }
    return values;
  }

  private async camPictures(): Promise<SummaryValue[]> {
    const { inputSize } = this.opts.cam.meta;
    if (!inputSize || this.pictures.length === 0) return [];
    const batch = batchOf(this.pictures.map((p) => p.input), inputSize);
    const res = classActivationMaps(this.opts.cam, batch, this.pictures.map((p) => [p.record.label]));
    batch.dispose();
    const [, h, w] = res.maps.shape;
    const maps = await res.maps.data() as Float32Array;
    tf.dispose([res.maps, res.logits]);
    const values: SummaryValue[] = [];
    for (const [i, p] of this.pictures.entries()) {
      const map = mapToSize(maps.subarray(i * h * w, (i + 1) * h * w), h, w, p.thumb.width, p.thumb.height);
      const png = await renderOverlay(p.thumb, map);
      values.push({ tag: `cam/${p.record.id}`, kind: 'image', png, width: p.thumb.width, height: p.thumb.height, channels: 3 });
    }
    return values;
  }

  close(): void {
    this.writer.close();
  }
}
