// TensorBoard event files checked with TensorBoard's own reader (EventAccumulator, from pip's `tensorboard` in a
// venv this test makes once under .cache/, or bench/.venv when that one has it). Skipped, saying why, when pip cannot
// provide tensorboard.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { makeTempDir, useEngine } from '../helpers.js';
import { projectRoot } from '../../src/paths.js';
import { EventFileWriter, crc32c, histogramOf } from '../../src/util/event-file.js';
import { runTraining } from '../../src/train/run.js';
import { pickCamRecords, TensorBoardSink } from '../../src/train/tensorboard.js';
import { readMetrics, type EpochRow, type StepRow } from '../../src/train/metrics.js';
import type { ImageRecord } from '../../src/data/types.js';
import { writeMiniCub } from './mini-cub.js';
import { tinyCam } from './tiny.js';

const VENV = path.join(projectRoot, '.cache', 'tensorboard-venv');

function importsTensorboard(python: string): boolean {
  return fs.existsSync(python) && spawnSync(python, ['-c', 'import tensorboard.backend.event_processing.event_accumulator'], { stdio: 'ignore' }).status === 0;
}

/** A python with tensorboard, or why there is none. */
function tensorboardPython(): { python?: string; why?: string } {
  for (const py of [path.join(projectRoot, 'bench', '.venv', 'bin', 'python'), path.join(VENV, 'bin', 'python')]) {
    if (importsTensorboard(py)) return { python: py };
  }
  const venv = spawnSync('python3', ['-m', 'venv', VENV], { encoding: 'utf8' });
  if (venv.status !== 0) return { why: `python3 -m venv failed: ${(venv.stderr || venv.error?.message || '').split('\n')[0]}` };
  const python = path.join(VENV, 'bin', 'python');
  const pip = spawnSync(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--retries', '0', '--timeout', '15', 'tensorboard'], { encoding: 'utf8' });
  if (pip.status !== 0 || !importsTensorboard(python)) return { why: `pip could not install tensorboard: ${(pip.stderr || '').trim().split('\n').pop()}` };
  return { python };
}

interface Read {
  tags: Record<string, string[]>;
  scalars: Record<string, Array<[number, number]>>;
  histograms: Record<string, Array<{ step: number; min: number; max: number; num: number; sum: number; bucket: number[]; bucket_limit: number[] }>>;
  images: Record<string, Array<{ step: number; width: number; height: number; png: string }>>;
}

const READER = `
import sys, json, base64
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'histograms': 0, 'images': 0})
ea.Reload()
t = ea.Tags()
print(json.dumps({
  'tags': {k: t[k] for k in ('scalars', 'histograms', 'images')},
  'scalars': {k: [[e.step, e.value] for e in ea.Scalars(k)] for k in t['scalars']},
  'histograms': {k: [dict(step=e.step, min=e.histogram_value.min, max=e.histogram_value.max, num=e.histogram_value.num,
                 sum=e.histogram_value.sum, bucket=list(e.histogram_value.bucket), bucket_limit=list(e.histogram_value.bucket_limit))
                 for e in ea.Histograms(k)] for k in t['histograms']},
  'images': {k: [dict(step=e.step, width=e.width, height=e.height, png=base64.b64encode(e.encoded_image_string).decode()) for e in ea.Images(k)]
             for k in t['images']},
}))
`;

describe('train: TensorBoard event files', function () {
  this.timeout(300_000);
  let python: string;
  before(function () {
    const found = tensorboardPython();
    if (!found.python) {
      console.log(`      skipped: ${found.why}`);
      this.skip();
    }
    python = found.python!;
  });
  before(useEngine);

  const read = (dir: string): Read => JSON.parse(execFileSync(python, ['-c', READER, dir], { encoding: 'utf8', maxBuffer: 64 << 20 })) as Read;

  it('CRC32C matches the standard check value', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).to.equal(0xe3069283);
  });

  it('writes scalars, histograms and PNG images that EventAccumulator reads back exactly', async () => {
    const dir = makeTempDir();
    const w = new EventFileWriter(dir);
    w.scalars(1, { 'a/loss': 0.5, 'a/acc': 0.25, skipped: undefined, nan: NaN });
    w.scalars(3, { 'a/loss': 0.125 });
    const values = [-1, 0, 0.5, 2, 2, 3];
    w.write(2, [{ tag: 'h', kind: 'histogram', histogram: histogramOf(values, 4) }]);
    const png = await sharp({ create: { width: 5, height: 3, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toBuffer();
    w.write(4, [{ tag: 'img', kind: 'image', png, width: 5, height: 3, channels: 3 }]);
    w.close();
    const r = read(dir);
    expect(r.tags.scalars.sort()).to.deep.equal(['a/acc', 'a/loss']);
    expect(r.scalars['a/loss']).to.deep.equal([[1, 0.5], [3, 0.125]]);
    expect(r.scalars['a/acc']).to.deep.equal([[1, 0.25]]);
    expect(r.histograms.h).to.have.length(1);
    // 4 equal buckets over [-1, 3]: [-1,0) [0,1) [1,2) [2,3]
    expect(r.histograms.h[0]).to.deep.include({ step: 2, min: -1, max: 3, num: 6, sum: 6.5, bucket: [1, 2, 0, 3], bucket_limit: [0, 1, 2, 3] });
    expect(r.images.img).to.have.length(1);
    expect(r.images.img[0]).to.deep.include({ step: 4, width: 5, height: 3 });
    expect(Buffer.from(r.images.img[0].png, 'base64').equals(png)).to.equal(true);
  });

  it('a torn or corrupted record is not read as data (the reader checks the framing CRCs)', () => {
    const dir = makeTempDir();
    const w = new EventFileWriter(dir);
    w.scalars(1, { x: 1 });
    w.scalars(2, { x: 2 });
    w.close();
    const bytes = fs.readFileSync(w.file);
    bytes[bytes.length - 6] ^= 0xff; // inside the last record's payload
    fs.writeFileSync(w.file, bytes);
    let steps: number[] = [];
    try {
      steps = (read(dir).scalars.x ?? []).map(([s]) => s);
    } catch {
      steps = []; // the reader may also refuse the file outright; either way step 2 is not believed
    }
    expect(steps).to.not.include(2);
  });

  it('picks CAM images spread over the classes, the same every time', () => {
    const recs = ['b1', 'a1', 'a2', 'c3', 'b0'].map((id, i): ImageRecord => ({ id, path: id, label: id.charCodeAt(0) - 97, width: 1, height: 1, boxes: [], split: i % 2 ? 'test' : 'train' }));
    expect(pickCamRecords(recs, 4).map((r) => r.id)).to.deep.equal(['a1', 'b0', 'c3', 'a2']);
    expect(pickCamRecords(recs, 2).map((r) => r.id)).to.deep.equal(['a1', 'b0']);
  });

  it('a training run writes loss/accuracy/lr/val/img-per-s scalars at the right steps, head histograms and CAM pictures', async () => {
    const work = makeTempDir();
    // 12 per class: 6 train, 2 of them carved out for validation (4 CAM pictures), so each epoch is 3 batches of 3 or fewer.
    const cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 12, size: 16 });
    const recipe = path.join(work, 'r.json');
    fs.writeFileSync(recipe, JSON.stringify({
      model: { backbone: 'vgg-tiny', weights: 'none', init: 'he-normal', head: { convFilters: 8 } },
      data: { dataset: cub, inputSize: 16, preprocessing: 'torch', valCarve: { perClass: 2 } },
      optimizer: { type: 'sgd', momentum: 0.9 }, lr: 0.02, batchSize: 3, epochs: 2, seed: 5, evaluation: { split: 'none' },
    }));
    const res = await runTraining({ recipe, checkpointRoot: path.join(work, 'ck'), runName: 'tb', cacheDir: null });
    expect(res.status).to.equal('completed');
    const r = read(res.runDir);
    const rows = readMetrics(res.runDir);
    const steps = rows.filter((x): x is StepRow => x.kind === 'step');
    const epochs = rows.filter((x): x is EpochRow => x.kind === 'epoch');
    expect(steps).to.have.length(res.globalStep); // the steps of 2 epochs over the training images left after the validation carve
    const near = (got: Array<[number, number]>, want: Array<[number, number]>) => {
      expect(got.map(([s]) => s)).to.deep.equal(want.map(([s]) => s));
      got.forEach(([, v], i) => expect(v).to.be.closeTo(want[i][1], 1e-6 * Math.max(1, Math.abs(want[i][1]))));
    };
    near(r.scalars['batch/loss'], steps.map((s) => [s.step, s.loss]));
    near(r.scalars['batch/accuracy'], steps.map((s) => [s.step, s.acc]));
    near(r.scalars['batch/lr'], steps.map((s) => [s.step, s.lr]));
    near(r.scalars['batch/images_per_sec'], steps.map((s) => [s.step, s.imagesPerSec]));
    near(r.scalars['epoch/loss'], epochs.map((e) => [e.epoch, e.loss]));
    near(r.scalars['epoch/accuracy'], epochs.map((e) => [e.epoch, e.acc]));
    near(r.scalars['epoch/val_loss'], epochs.map((e) => [e.epoch, e.valLoss!]));
    near(r.scalars['epoch/val_accuracy'], epochs.map((e) => [e.epoch, e.valAcc!]));
    near(r.scalars['epoch/lr'], epochs.map((e) => [e.epoch, e.lr]));
    near(r.scalars['epoch/images_per_sec'], epochs.map((e) => [e.epoch, e.imagesPerSec]));

    // Histograms of the head's weights per epoch, equal to the final weights at the last epoch.
    expect(r.tags.histograms.sort()).to.deep.equal(['head/gap_classifier/bias', 'head/gap_classifier/kernel', 'head/gap_conv/bias', 'head/gap_conv/kernel']);
    const { loadCamModel } = await import('../../src/models/meta.js');
    const saved = await loadCamModel(path.join(res.runDir, 'last'));
    const kernel = await saved.model.getLayer('gap_conv').getWeights()[0].data();
    saved.model.dispose();
    const h = r.histograms['head/gap_conv/kernel'];
    expect(h.map((e) => e.step)).to.deep.equal([1, 2]);
    expect(h[1].num).to.equal(kernel.length);
    expect(h[1].min).to.be.closeTo(Math.min(...kernel), 1e-7);
    expect(h[1].max).to.be.closeTo(Math.max(...kernel), 1e-7);
    expect(h[1].sum).to.be.closeTo(kernel.reduce((a, b) => a + b, 0), 1e-4);

    // CAM pictures of up to 4 fixed validation images, spread over the classes, one per epoch, PNGs at the photos' size (16×16).
    expect(r.tags.images).to.have.length(Math.min(4, res.numVal));
    for (const tag of r.tags.images) {
      expect(tag).to.match(/^cam\//);
      expect(r.images[tag].map((e) => e.step)).to.deep.equal([1, 2]);
      const meta = await sharp(Buffer.from(r.images[tag][1].png, 'base64')).metadata();
      expect([meta.format, meta.width, meta.height]).to.deep.equal(['png', 16, 16]);
    }
  });

  it('the sink keeps the tensor count flat', async () => {
    const work = makeTempDir();
    const cam = await tinyCam(3);
    const file = path.join(work, 'a.png');
    await sharp({ create: { width: 12, height: 10, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toFile(file);
    const rec: ImageRecord = { id: 'a', path: file, label: 1, width: 12, height: 10, boxes: [], split: 'test' };
    const sink = await TensorBoardSink.create({ runDir: work, cam, headLayers: ['cam_conv', 'predictions'], camRecords: [rec] });
    const row: EpochRow = { kind: 'epoch', epoch: 1, step: 1, loss: 1, acc: 0.5, lr: 0.1, imagesPerSec: 10, seconds: 1, best: true };
    await sink.row(row);
    const before = tf.memory().numTensors;
    for (let e = 2; e <= 4; e++) await sink.row({ ...row, epoch: e });
    expect(tf.memory().numTensors).to.equal(before);
    sink.close();
    cam.model.dispose();
    expect(read(work).images['cam/a'].map((e) => e.step)).to.deep.equal([1, 2, 3, 4]);
  });
});
