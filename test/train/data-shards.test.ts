// Sharded data sources (TrainData.sharded, data-parallel training): each worker decodes only its slice of every
// global batch, and the workers' slices put together are exactly the batch one process gets — same seeded order,
// same augmentation per image, same pixels — for in-memory data and for images through the data pipeline.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir, expectUserError } from '../helpers.js';
import { memoryData, sliceOf, type LabelledBatch, type TrainData } from '../../src/train/data.js';
import { datasetTrainData } from '../../src/train/pipeline-data.js';
import { loadDataset } from '../../src/data/datasets.js';
import { epochOrder } from '../../src/data/pipeline.js';
import { parseRecipe } from '../../src/recipes/loader.js';
import { writeMiniCub } from './mini-cub.js';

async function collect(batches: AsyncIterable<LabelledBatch>): Promise<{ pixels: number[][]; labels: number[][] }> {
  const pixels: number[][] = [], labels: number[][] = [];
  for await (const b of batches) {
    pixels.push(Array.from(await b.images.data()));
    labels.push(Array.from(b.labels));
    b.images.dispose();
  }
  return { pixels, labels };
}

/** Each worker's batches, put back together batch by batch, equal the unsharded batches (bit for bit); returns how
 *  many global batches there were. */
async function expectShardsMakeWhole(data: TrainData, workers: number, batches: (d: TrainData) => AsyncIterable<LabelledBatch>): Promise<number> {
  const whole = await collect(batches(data));
  const parts = await Promise.all(Array.from({ length: workers }, (_, r) => collect(batches(data.sharded!(r, workers)))));
  const next = parts.map(() => 0); // a worker's empty (validation) slices are left out: its own batch cursor
  whole.labels.forEach((labels, b) => {
    const pixels: number[] = [], joined: number[] = [];
    parts.forEach((p, r) => {
      const [s, e] = sliceOf(labels.length, r, workers);
      if (e <= s) return;
      const k = next[r]++;
      expect(p.labels[k], `worker ${r}, batch ${b}`).to.have.length(e - s);
      pixels.push(...p.pixels[k]);
      joined.push(...p.labels[k]);
    });
    expect(joined, `batch ${b}: labels`).to.deep.equal(labels);
    expect(pixels.length).to.equal(whole.pixels[b].length);
    expect(pixels.every((v, i) => v === whole.pixels[b][i]), `batch ${b}: pixels`).to.equal(true);
  });
  parts.forEach((p, r) => expect(p.labels, `worker ${r}: no batch more`).to.have.length(next[r]));
  return whole.labels.length;
}

describe('train: sharded data sources (each data-parallel worker decodes its own slice)', function () {
  this.timeout(120_000);
  let work: string;
  before(async () => {
    await useEngine();
    work = makeTempDir('gapcam-shards-');
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('memoryData: 3 workers\' slices of every shuffled batch (from a resumed batch on) and of validation make the whole batches', async () => {
    const images = tf.randomUniform([11, 2, 2, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const val = tf.randomUniform([5, 2, 2, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
    const data = memoryData({ images, labels: Array.from({ length: 11 }, (_, i) => i % 3), numClasses: 3, batchSize: 4, seed: 9,
      valImages: val, valLabels: [0, 1, 2, 0, 1] });
    const before = tf.memory().numTensors;
    expect(await expectShardsMakeWhole(data, 3, (d) => d.trainBatches(1, 1))).to.equal(2);
    expect(await expectShardsMakeWhole(data, 3, (d) => d.valBatches!())).to.equal(2); // 4 + 1: two workers have no slice of the last
    expect(data.sharded!(1, 3).trainSize, 'sizes stay global').to.equal(11);
    expect(tf.memory().numTensors, 'no tensor left behind').to.equal(before);
    tf.dispose([images, val]);
  });

  it('datasetTrainData: the same random crops and flips per image as one process, through the pipeline; an all-bad slice is one line', async () => {
    const cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 10, size: 16 });
    const recipe = parseRecipe({
      model: { backbone: 'vgg-tiny' },
      data: { dataset: cub, inputSize: 12, preprocessing: 'torch', trainTransforms: [{ op: 'random-crop', scale: [0.5, 1] }, { op: 'flip' }] },
      batchSize: 4, epochs: 2, seed: 3,
    }, 'r');
    const dataset = await loadDataset(cub);
    const train = dataset.records.filter((r) => r.split === 'train');
    const valRecs = dataset.records.filter((r) => r.split === 'test').slice(0, 5);
    const data = datasetTrainData({ recipe, dataset, train, val: valRecs, cacheDir: null });
    expect(await expectShardsMakeWhole(data, 2, (d) => d.trainBatches(1, 0))).to.equal(3); // 10 images: 4 + 4 + 2
    expect(await expectShardsMakeWhole(data, 2, (d) => d.trainBatches(0, 2))).to.equal(1);
    expect(await expectShardsMakeWhole(data, 3, (d) => d.valBatches!())).to.equal(2);

    // --skip-bad-images: worker 1's whole slice of a batch unreadable → it stops saying so (instead of running one
    // step fewer than the others); worker 0 is unaffected
    const skipping = datasetTrainData({ recipe: { ...recipe, batchSize: 2 }, dataset, train, cacheDir: null, skipBadImages: true });
    expect((await collect(skipping.trainBatches(0, 0))).labels).to.have.length(5);
    const victim = train[epochOrder(train.length, true, recipe.seed, 0)[1]].path; // batch 0 = order[0..1]; worker 1 takes order[1]
    fs.writeFileSync(victim, 'not an image');
    await expectUserError(collect(skipping.sharded!(1, 2).trainBatches(0, 0)), 'data-parallel worker 1', 'batch 1 (epoch 1)', '--skip-bad-images');
    expect((await collect(skipping.sharded!(0, 2).trainBatches(0, 0))).labels).to.have.length(5);
    expect(skipping.skipped!().map((s) => s.file)).to.deep.equal([victim]);
  });
});

