import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import seedrandom from 'seedrandom';
import { spawnSync } from 'node:child_process';
import { projectRoot } from '../../src/paths.js';
import { useEngine, makeTempDir } from '../helpers.js';
import { writeFeatureSet, readFeatureSet, type FeatureIndexRow, type FeaturesMeta } from '../../src/features/store.js';
import { runSvm, loadSvmModel } from '../../src/svm/service.js';
import { predictLinearSvm } from '../../src/svm/linear-svm.js';
import { readNpy } from '../../src/util/npy.js';
import { UserError } from '../../src/errors.js';

const CLASSES = ['cat', 'dog', 'fox'];

/** Writes a feature folder of `n` rows: three well separated classes in `d` dimensions. */
async function makeFeatures(dir: string, n: number, d: number, seed: string, split: string): Promise<void> {
  const centres = (() => {
    const r = seedrandom('centres');
    return CLASSES.map(() => Array.from({ length: 64 }, () => r() * 6));
  })();
  const rng = seedrandom(seed);
  const data = new Float32Array(n * d);
  const rows: FeatureIndexRow[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 3;
    for (let j = 0; j < d; j++) data[i * d + j] = centres[k][j] + (rng() - 0.5);
    rows.push({ row: i, imageId: `${split}-${i}`, path: `img/${split},${i}.jpg`, classId: k, className: CLASSES[k], split });
  }
  const meta: FeaturesMeta = {
    format: 'gapcam-features',
    version: 1,
    cacheKey: `key-${seed}`,
    source: { checkpoint: 'synthetic', checkpointId: 'synthetic', dataset: 'synthetic', split, layer: 'gap', pooling: 'identity', crop: 'full', inputSize: [1, 1] },
    count: n,
    dimension: d,
    classNames: CLASSES,
    createdAt: new Date(0).toISOString(),
  };
  await writeFeatureSet(dir, { data, rows, meta });
}

describe('svm: feature folders and the svm service', () => {
  before(useEngine);
  let tmp: string;
  before(async () => {
    tmp = makeTempDir('gapcam-svm-');
    await makeFeatures(path.join(tmp, 'train'), 60, 8, 'train', 'train');
    await makeFeatures(path.join(tmp, 'test'), 30, 8, 'test', 'test');
    await makeFeatures(path.join(tmp, 'test-wide'), 30, 12, 'test', 'test');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('writes a feature folder that reads back exactly (npy + index.csv with quoted fields)', () => {
    const set = readFeatureSet(path.join(tmp, 'train'));
    expect(set.count).to.equal(60);
    expect(set.dimension).to.equal(8);
    expect(set.rows[5]).to.deep.equal({ row: 5, imageId: 'train-5', path: 'img/train,5.jpg', classId: 2, className: 'fox', split: 'train' });
    const npy = readNpy(path.join(tmp, 'train', 'features.npy'));
    expect(npy.shape).to.deep.equal([60, 8]);
    expect(Array.from(npy.data.subarray(0, 8))).to.deep.equal(Array.from(set.data.subarray(0, 8)));
    // Also accepted: the path of features.npy itself.
    expect(readFeatureSet(path.join(tmp, 'train', 'features.npy')).count).to.equal(60);
  });

  it('fits with cross-validated C, scores the test folder and saves model, predictions and report', async () => {
    const out = path.join(tmp, 'svm-out');
    const { result } = await runSvm({ train: path.join(tmp, 'train'), test: path.join(tmp, 'test'), out, cGrid: [0.01, 1], folds: 3, scale: 'standard' });
    expect(result.test!.accuracy).to.equal(1);
    expect(result.test!.meanPerClassAccuracy).to.equal(1);
    expect(result.cv!.grid.map((p) => p.C)).to.deep.equal([0.01, 1]);
    expect([0.01, 1]).to.include(result.model.C);
    for (const f of ['model.json', 'predictions.csv', 'svm.json', 'svm.md']) expect(fs.existsSync(path.join(out, f)), f).to.equal(true);
    const csv = fs.readFileSync(path.join(out, 'predictions.csv'), 'utf8').trim().split('\n');
    expect(csv).to.have.length(31);
    expect(csv[0]).to.equal('row,image_id,path,true_class_id,true_class,predicted_class_id,predicted_class,correct,score');
    expect(csv[2]).to.match(/^1,test-1,"img\/test,1\.jpg",1,dog,1,dog,1,/);
    // The saved model predicts what the run predicted.
    const model = loadSvmModel(out);
    const test = readFeatureSet(path.join(tmp, 'test'));
    const pred = predictLinearSvm(model, { data: test.data, rows: test.count, cols: test.dimension });
    expect(Array.from(pred.predicted)).to.deep.equal(result.predictions.map((p) => p.predictedClass));
  });

  it('refuses train and test features of different dimensions with a one-line error', async () => {
    let caught: unknown;
    try {
      await runSvm({ train: path.join(tmp, 'train'), test: path.join(tmp, 'test-wide'), out: path.join(tmp, 'never') });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UserError);
    const msg = (caught as Error).message;
    expect(msg).to.not.include('\n');
    expect(msg).to.include('12-dimensional').and.include('8-dimensional').and.include('test-wide');
    expect(fs.existsSync(path.join(tmp, 'never'))).to.equal(false);
  });

  it('gapcam svm: exit 0 with the report, and exit 2 with one line for features of different dimensions', () => {
    const cli = (args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'cli.ts'), 'svm', ...args], { encoding: 'utf8', env: { ...process.env } });
    const ok = cli(['--train', path.join(tmp, 'train'), '--test', path.join(tmp, 'test'), '--c-grid', '1', '--out', path.join(tmp, 'cli-out')]);
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout).to.include('test accuracy: **100.00 %** (30/30)');
    const bad = cli(['--train', path.join(tmp, 'train'), '--test', path.join(tmp, 'test-wide')]);
    expect(bad.status).to.equal(2);
    const lines = bad.stderr.split('\n').filter((l) => l.startsWith('gapcam:'));
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^gapcam: svm: --test features .*test-wide are 12-dimensional but --train features .*train are 8-dimensional/);
  });

  it('filters rows by split (one folder for both sides) and names a split that has no rows', async () => {
    const out = path.join(tmp, 'svm-split');
    const { result } = await runSvm({ train: path.join(tmp, 'train'), trainSplit: 'train', test: path.join(tmp, 'test'), testSplit: 'test', out, cGrid: [1] });
    expect(result.trainCount).to.equal(60);
    expect(result.test!.count).to.equal(30);
    let caught: unknown;
    try {
      await runSvm({ train: path.join(tmp, 'train'), testSplit: 'val', out });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UserError);
    expect((caught as Error).message).to.match(/^--test-split val: .* has no rows of split 'val' \(splits there: train\)$/);
  });

  it('names the folder when it is not a feature folder, and when index and array disagree', async () => {
    expect(() => readFeatureSet(path.join(tmp, 'nothing-here'))).to.throw(UserError, /not a feature folder/);
    const bad = path.join(tmp, 'bad');
    fs.cpSync(path.join(tmp, 'train'), bad, { recursive: true });
    const lines = fs.readFileSync(path.join(bad, 'index.csv'), 'utf8').trim().split('\n');
    fs.writeFileSync(path.join(bad, 'index.csv'), lines.slice(0, -1).join('\n') + '\n');
    expect(() => readFeatureSet(bad)).to.throw(UserError, /59 rows, but features\.npy has 60/);
  });
});
