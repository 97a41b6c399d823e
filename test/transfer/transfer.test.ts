import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import seedrandom from 'seedrandom';
import { useEngine, makeTempDir } from '../helpers.js';
import { saveCamModel } from '../../src/models/meta.js';
import { runTransfer } from '../../src/transfer/run.js';
import { loadExperiment, parseExperiment } from '../../src/transfer/experiment.js';
import { randomSplit, datasetSplit, meanStd, samplePool, withoutClasses } from '../../src/transfer/protocol.js';
import { readFeatureSet } from '../../src/features/store.js';
import { UserError } from '../../src/errors.js';
import type { Dataset, ImageRecord } from '../../src/data/types.js';
import { projectRoot } from '../../src/paths.js';

const COLOURS: Record<string, [number, number, number]> = { red: [220, 30, 30], green: [30, 200, 40], blue: [40, 40, 210] };

/** An image folder root/<class>/*.png of noisy colour fields (a linear SVM on mean colour separates them). */
async function writeColourFolder(root: string, perClass: number): Promise<void> {
  const rng = seedrandom('colours');
  for (const [name, rgb] of Object.entries(COLOURS)) {
    fs.mkdirSync(path.join(root, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const w = 20 + (i % 3) * 4, h = 18;
      const data = Buffer.alloc(w * h * 3);
      for (let p = 0; p < w * h; p++) for (let c = 0; c < 3; c++) data[p * 3 + c] = Math.max(0, Math.min(255, rgb[c] + Math.round((rng() - 0.5) * 120)));
      await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path.join(root, name, `${String(i).padStart(3, '0')}.png`));
    }
  }
}

/** A tiny CAM model (conv → GAP → Dense) saved with meta.json. */
async function writeTinyModel(dir: string): Promise<void> {
  const input = tf.input({ shape: [12, 12, 3] });
  const f = tf.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'feat', kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }), biasInitializer: tf.initializers.constant({ value: 0.05 }) }).apply(input) as tf.SymbolicTensor;
  const g = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(f) as tf.SymbolicTensor;
  const d = tf.layers.dense({ units: 4, name: 'fc', kernelInitializer: tf.initializers.glorotUniform({ seed: 10 }) }).apply(g) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: d });
  await saveCamModel(dir, {
    model,
    meta: { classNames: ['w', 'x', 'y', 'z'], preprocessing: 'unit', inputSize: [12, 12], headKind: 'gap-dense', featureLayer: 'feat', poolingLayer: 'gap', classifierLayer: 'fc', outputIsSoftmax: false },
  });
  model.dispose();
}

describe('transfer: protocol', () => {
  const rows = Array.from({ length: 40 }, (_, i) => ({ classId: i < 25 ? 0 : 1, imageId: `img${i}`, split: 'train' }));

  it('samples trainPerClass / testPerClass per class, disjoint, deterministic, different per split index', () => {
    const a = randomSplit(rows, ['a', 'b'], { trainPerClass: 5, testPerClass: 4, seed: 1, index: 0 });
    expect(a.train.filter((i) => i < 25)).to.have.length(5);
    expect(a.train.filter((i) => i >= 25)).to.have.length(5);
    expect(a.test.filter((i) => i < 25)).to.have.length(4);
    expect(a.test.filter((i) => i >= 25)).to.have.length(4);
    expect(a.train.filter((i) => a.test.includes(i))).to.deep.equal([]);
    expect(randomSplit(rows, ['a', 'b'], { trainPerClass: 5, testPerClass: 4, seed: 1, index: 0 })).to.deep.equal(a);
    expect(randomSplit(rows, ['a', 'b'], { trainPerClass: 5, testPerClass: 4, seed: 1, index: 1 }).train).to.not.deep.equal(a.train);
    // Row order does not matter, only ids: the same images are drawn from a reversed table.
    const reversed = [...rows].reverse();
    const b = randomSplit(reversed, ['a', 'b'], { trainPerClass: 5, testPerClass: 4, seed: 1, index: 0 });
    expect(b.train.map((i) => reversed[i].imageId).sort()).to.deep.equal(a.train.map((i) => rows[i].imageId).sort());
  });

  it('keeps the rest for testing by default and reports classes too small for the protocol', () => {
    const s = randomSplit(rows, ['a', 'b'], { trainPerClass: 20, seed: 0, index: 0 });
    expect(s.train).to.have.length(20 + 14);
    expect(s.test).to.have.length(5 + 1);
    expect(s.shortClasses).to.deep.equal(['b']);
  });

  it("uses the dataset's own split: train vs test (val only when there is no test split)", () => {
    expect(datasetSplit([{ split: 'train' }, { split: 'val' }, { split: 'test' }, { split: 'train' }])).to.deep.equal({ train: [0, 3], test: [2], shortClasses: [] });
    expect(datasetSplit([{ split: 'train' }, { split: 'val' }])).to.deep.equal({ train: [0], test: [1], shortClasses: [] });
  });

  it('computes mean and sample std, samples a pool and drops excluded classes with renumbered labels', () => {
    const m = meanStd([0.5, 0.7, 0.9]);
    expect(m.mean).to.be.closeTo(0.7, 1e-12);
    expect(m.std).to.be.closeTo(0.2, 1e-12);
    expect(meanStd([0.4])).to.deep.equal({ mean: 0.4, std: 0 });
    const records: ImageRecord[] = rows.map((r, i) => ({ id: r.imageId, path: `${i}.png`, label: r.classId, width: 1, height: 1, boxes: [], split: 'train' }));
    const pool = samplePool(records, ['a', 'b'], 6, 'seed');
    expect(pool.filter((r) => r.label === 0)).to.have.length(6);
    expect(pool.filter((r) => r.label === 1)).to.have.length(6);
    const ds: Dataset = { name: 'd', root: '/', classNames: ['a', 'b'], records };
    const only = withoutClasses(ds, ['a']);
    expect(only.classNames).to.deep.equal(['b']);
    expect(only.records).to.have.length(15);
    expect(only.records.every((r) => r.label === 0)).to.equal(true);
  });
});

describe('transfer: experiments end to end', () => {
  before(useEngine);
  let tmp: string;
  before(async () => {
    tmp = makeTempDir('gapcam-transfer-');
    await writeColourFolder(path.join(tmp, 'data', 'colours'), 14);
    await writeTinyModel(path.join(tmp, 'model'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function writeExperiment(name: string, body: object): string {
    const file = path.join(tmp, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(body, null, 2));
    return file;
  }

  it('refuses a malformed experiment with one line naming the key', () => {
    const bad = writeExperiment('bad', { kind: 'transfer', sources: [{ name: 's', checkpoint: 'x' }], datasets: [{ name: 'd' }] });
    expect(() => loadExperiment(bad)).to.throw(UserError, /datasets\.0\.trainPerClass: trainPerClass is required/);
    expect(() => parseExperiment({ kind: 'transfer', sources: [], datasets: [] }, 'f.json')).to.throw(UserError, /^experiment f\.json: sources:/);
  });

  it('parses the shipped experiment files, resolving relative paths against the project root', () => {
    const demo = loadExperiment('transfer-demo');
    expect(demo.sources[0].checkpoint).to.equal(path.resolve(projectRoot, '../shared/models/darknet-tiny'));
    expect(demo.datasets[0].dataRoot).to.equal(path.resolve(projectRoot, '../shared/datasets'));
    const paper = loadExperiment(path.join(projectRoot, 'recipes', 'transfer-paper.json'));
    expect(paper.datasets.map((d) => [d.name, d.trainPerClass])).to.deep.equal([['Caltech-101', 30], ['Scene-15', 100], ['MIT Indoor-67', 80], ['UIUC Event-8', 70]]);
  });

  it('runs features + SVM over random splits, writes the table, says what is missing, and reuses features', async () => {
    const file = writeExperiment('exp', {
      kind: 'transfer',
      description: 'colour test',
      sources: [
        { name: 'tiny GAP', checkpoint: path.join(tmp, 'model') },
        { name: 'tiny feat, pooled', checkpoint: path.join(tmp, 'model'), layer: 'feat' },
        { name: 'absent model', checkpoint: path.join(tmp, 'no-such-model'), hint: 'train it first' },
      ],
      datasets: [
        { name: 'colours', dataset: path.join(tmp, 'data', 'colours'), trainPerClass: 6, testPerClass: 5, splits: 3 },
        { name: 'nowhere', dataset: path.join(tmp, 'data', 'nowhere'), trainPerClass: 5, where: 'put it at data/nowhere/<class>/*.jpg' },
      ],
      seed: 3,
      svm: { cGrid: [0.01, 1], folds: 3 },
    });
    const out = path.join(tmp, 'out');
    const r = await runTransfer(file, { out, checkpointRoot: path.join(tmp, 'ckpt') });
    const cell = r.cells.find((c) => c.source === 'tiny GAP' && c.dataset === 'colours')!;
    expect(cell.status).to.equal('ok');
    expect(cell.splits).to.have.length(3);
    for (const s of cell.splits!) {
      expect(s.trainCount).to.equal(18);
      expect(s.testCount).to.equal(15);
      expect([0.01, 1]).to.include(s.C);
    }
    const ms = meanStd(cell.splits!.map((s) => s.accuracy));
    expect(cell.mean).to.equal(ms.mean);
    expect(cell.std).to.equal(ms.std);
    expect(cell.features!.dimension).to.equal(6);
    expect(cell.features!.count).to.equal(42);
    expect(r.cells.find((c) => c.dataset === 'nowhere' && c.source === 'tiny GAP')!.status).to.equal('missing-dataset');
    expect(r.cells.filter((c) => c.source === 'absent model').map((c) => c.status)).to.deep.equal(['missing-source', 'missing-source']);
    // The table files.
    const md = fs.readFileSync(path.join(out, 'table.md'), 'utf8');
    expect(md).to.include('| Features | colours | nowhere |');
    expect(md).to.include(`| tiny GAP (6-D) | ${(100 * cell.mean!).toFixed(1)} ± ${(100 * cell.std!).toFixed(1)} | missing data |`);
    expect(md).to.include('| absent model | missing model | missing model |');
    expect(md).to.include('Where to put it: put it at data/nowhere/<class>/*.jpg');
    expect(md).to.include('To make it: train it first');
    const csv = fs.readFileSync(path.join(out, 'table.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).to.equal('source,dimension,colours mean,colours std,colours status,nowhere mean,nowhere std,nowhere status');
    expect(csv).to.have.length(4);
    expect(csv[1]).to.equal(`tiny GAP,6,${(100 * cell.mean!).toFixed(2)},${(100 * cell.std!).toFixed(2)},ok,,,missing-dataset`);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(json.cells).to.have.length(6);
    // The same model read at 'feat' and averaged over h × w is its GAP output: the same numbers, one model load.
    const pooled = r.cells.find((c) => c.source === 'tiny feat, pooled' && c.dataset === 'colours')!;
    expect(pooled.splits).to.deep.equal(cell.splits);
    // The features are a real feature folder, and a second run reuses them with the same numbers.
    expect(readFeatureSet(cell.features!.dir).count).to.equal(42);
    const again = await runTransfer(file, { out, checkpointRoot: path.join(tmp, 'ckpt'), onlySources: ['tiny GAP'], onlyDatasets: ['colours'] });
    const cell2 = again.cells[0];
    expect(cell2.features!.reused).to.equal(true);
    expect(cell2.splits).to.deep.equal(cell.splits);
    // Forced re-extraction gives the same numbers and leaves no tensor behind (the model is disposed after its row).
    const tensorsBefore = tf.memory().numTensors;
    const forced = await runTransfer(file, { out, checkpointRoot: path.join(tmp, 'ckpt'), onlySources: ['tiny GAP', 'tiny feat, pooled'], onlyDatasets: ['colours'], force: true });
    expect(tf.memory().numTensors, 'tensors after a run').to.equal(tensorsBefore);
    expect(forced.cells[0].features!.reused).to.equal(false);
    expect(forced.cells[0].splits).to.deep.equal(cell.splits);
  });
});
