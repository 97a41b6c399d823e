// The training service end to end in-process on a miniature CUB tree: determinism given a seed (initialisation,
// shuffling, augmentation), the run folder's contents, and --resume naming errors.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir, expectNoTensorLeak } from '../helpers.js';
import { runTraining, heNormalInit, trainAndEvaluate, buildRecipeModel, mergeSkips } from '../../src/train/run.js';
import { parseRecipe } from '../../src/recipes/loader.js';
import { loadLastCheckpoint } from '../../src/train/checkpoint.js';
import { UserError } from '../../src/errors.js';
import { createRandom, withRandom } from '../../src/train/rng.js';
import { writeMiniCub } from './mini-cub.js';
import { weightsOf } from './tiny.js';

describe('train: the run service', function () {
  this.timeout(120_000);
  before(useEngine);
  let work: string;
  let cub: string;
  let recipeFile: string;
  before(async () => {
    work = makeTempDir();
    cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 8, size: 16 });
    recipeFile = path.join(work, 'r.json');
    fs.writeFileSync(recipeFile, JSON.stringify({
      model: { backbone: 'vgg-tiny', weights: 'none', init: 'he-normal', head: { convFilters: 8, dropout: 0.2 } },
      data: { dataset: cub, inputSize: 16, preprocessing: 'torch', trainTransforms: [{ op: 'random-crop', scale: [0.6, 1] }, { op: 'flip' }] },
      optimizer: { type: 'sgd', momentum: 0.9 }, lr: 0.02, batchSize: 3, epochs: 2, seed: 5, evaluation: { split: 'none' },
    }));
  });

  it('is deterministic given the seed, and writes recipe.json, run.json, metrics, report, best and last', async () => {
    const out = path.join(work, 'ck');
    const a = await runTraining({ recipe: recipeFile, checkpointRoot: out, runName: 'a', cacheDir: null });
    const b = await runTraining({ recipe: recipeFile, checkpointRoot: out, runName: 'b', cacheDir: null });
    const c = await runTraining({ recipe: recipeFile, overrides: { seed: 6 }, checkpointRoot: out, runName: 'c', cacheDir: null });
    expect(a.status).to.equal('completed');
    expect(a.globalStep).to.equal(4); // 8 train images − 2 carved for validation, batch 3 → 2 steps × 2 epochs
    const [ca, cb, cc] = await Promise.all(['a', 'b', 'c'].map((r) => loadLastCheckpoint(path.join(out, r))));
    const [wa, wb, wc] = await Promise.all([ca, cb, cc].map((x) => weightsOf(x.cam.model)));
    let differs = false;
    for (const [k, v] of wa) {
      expect(tf.util.arraysEqual(v, wb.get(k)!), k).to.equal(true);
      if (!tf.util.arraysEqual(v, wc.get(k)!)) differs = true;
    }
    expect(differs, 'another seed gives other weights').to.equal(true);
    for (const f of ['recipe.json', 'run.json', 'metrics.jsonl', 'metrics.csv', 'report.html', 'best/model.json', 'best/meta.json', 'last/optimizer.bin']) {
      expect(fs.existsSync(path.join(out, 'a', f)), f).to.equal(true);
    }
    const saved = JSON.parse(fs.readFileSync(path.join(out, 'a', 'recipe.json'), 'utf8'));
    expect(saved.seed).to.equal(5);
    expect(saved.model.init).to.equal('he-normal');
    expect(JSON.parse(fs.readFileSync(path.join(out, 'c', 'recipe.json'), 'utf8')).seed).to.equal(6);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'a', 'run.json'), 'utf8')).headLayers).to.deep.equal(['gap_conv', 'gap_classifier']);
    expect(ca.cam.meta).to.deep.include({ preprocessing: 'torch', recipe: 'r', backbone: 'vgg-tiny' });
    expect(ca.cam.meta.inputSize).to.deep.equal([16, 16]);
    for (const x of [ca, cb, cc]) x.cam.model.dispose();
  });

  it('refuses to overwrite a run and names a missing --resume run', async () => {
    const out = path.join(work, 'ck2');
    await runTraining({ recipe: recipeFile, checkpointRoot: out, runName: 'x', maxSteps: 1, cacheDir: null });
    let err: unknown;
    try { await runTraining({ recipe: recipeFile, checkpointRoot: out, runName: 'x', cacheDir: null }); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.contain('already exists').and.to.contain('--resume x');
    err = undefined;
    try { await runTraining({ resume: 'nope', checkpointRoot: out }); } catch (e) { err = e; }
    expect((err as Error).message).to.match(/^--resume: no run 'nope'/);
    const r = await runTraining({ resume: 'x', checkpointRoot: out, cacheDir: null });
    expect(r.status).to.equal('completed');
    expect(r.globalStep).to.equal(4);
  });

  it('after training, evaluates the best checkpoint and writes CAM images and the headline numbers into report.html', async () => {
    const out = path.join(work, 'ck3');
    const file = path.join(work, 'e.json');
    const r = JSON.parse(fs.readFileSync(recipeFile, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...r, epochs: 1, evaluation: { split: 'test', camImages: 2 } }));
    const res = await trainAndEvaluate({ recipe: file, checkpointRoot: out, runName: 'e', cacheDir: null });
    expect(res.train.status).to.equal('completed');
    const ev = res.evaluation!;
    expect(ev.checkpoint).to.equal(path.join(out, 'e', 'best'));
    expect(ev.run!.report.dataset.images).to.equal(8);
    expect(ev.headline['top-1 accuracy']).to.be.within(0, 100);
    expect(ev.headline).to.have.property('MaxBoxAccV2');
    expect(ev.cams!.images).to.equal(2);
    expect(fs.existsSync(path.join(out, 'e', 'evaluation', 'evaluation.json'))).to.equal(true);
    const html = fs.readFileSync(path.join(out, 'e', 'report.html'), 'utf8');
    expect(html).to.contain('top-1 accuracy (test, best selected on val)').and.to.contain('CAM images');
    expect(html).to.contain('checkpoint selected on').and.to.contain('val carved from train (2 images, 10 % per class, seed 0)');
    expect(html).to.not.contain('WARNING');
  });

  it('says the final evaluation is skipped when the dataset has no images of the evaluation split', async () => {
    const dir = await writeMiniCub(path.join(work, 'all-train'), { classes: 2, perClass: 4, size: 16 });
    const splitFile = path.join(dir, 'train_test_split.txt');
    fs.writeFileSync(splitFile, fs.readFileSync(splitFile, 'utf8').replace(/ 0$/gm, ' 1'));
    const file = path.join(work, 'no-test.json');
    const r = JSON.parse(fs.readFileSync(recipeFile, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...r, data: { ...r.data, dataset: dir }, epochs: 1, evaluation: { split: 'test', camImages: 2 } }));
    const res = await trainAndEvaluate({ recipe: file, checkpointRoot: path.join(work, 'ck-no-test'), runName: 'n', cacheDir: null });
    expect(res.train.status).to.equal('completed');
    expect(res.evaluation!.skipped).to.equal('the dataset has no test images: final evaluation skipped');
    expect(res.evaluation!.run).to.equal(undefined);
  });

  it('with skipBadImages, lists the images the loader and the pipeline left out in the run\'s skipped.txt', async () => {
    const dir = await writeMiniCub(path.join(work, 'bad-images'), { classes: 2, perClass: 8, size: 16 });
    const train = fs.readFileSync(path.join(dir, 'train_test_split.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ')).filter(([, t]) => t === '1').map(([id]) => id);
    const pathOf = new Map(fs.readFileSync(path.join(dir, 'images.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, string]));
    const empty = path.join(dir, 'images', pathOf.get(train[0])!);
    const corrupt = path.join(dir, 'images', pathOf.get(train[1])!);
    fs.writeFileSync(empty, '');
    fs.writeFileSync(corrupt, Buffer.from('not an image at all, just bytes'));
    const file = path.join(work, 'bad.json');
    const r = JSON.parse(fs.readFileSync(recipeFile, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...r, data: { ...r.data, dataset: dir, valSplit: 'none' }, epochs: 1 }));
    const res = await runTraining({ recipe: file, checkpointRoot: path.join(work, 'ck-bad'), runName: 'b', cacheDir: null, skipBadImages: true });
    expect(res.status).to.equal('completed');
    const lines = fs.readFileSync(path.join(res.runDir, 'skipped.txt'), 'utf8').trim().split('\n');
    expect(lines.map((l) => path.resolve(l.split('\t')[0])).sort()).to.deep.equal([empty, corrupt].map((f) => path.resolve(f)).sort());
    for (const l of lines) expect(l.split('\t')[1]).to.be.a('string').and.not.equal('');
  });

  it('carves a seeded, stratified validation split out of train, records it in run.json, and reads no test image before the final evaluation', async () => {
    const root = path.join(work, 'cub-carve');
    const dir = await writeMiniCub(root, { classes: 2, perClass: 12, size: 16, seed: 3 });
    // image sizes given, so loading the dataset reads no image header either
    const ids = fs.readFileSync(path.join(dir, 'images.txt'), 'utf8').trim().split('\n').map((l) => l.split(' '));
    fs.writeFileSync(path.join(dir, 'image_sizes.txt'), ids.map(([id]) => `${id} 16 16`).join('\n') + '\n');
    const isTrain = new Map(fs.readFileSync(path.join(dir, 'train_test_split.txt'), 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([id, t]) => [id, t === '1']));
    const testFiles = ids.filter(([id]) => !isTrain.get(id)).map(([, rel]) => path.join(dir, 'images', rel));
    const file = path.join(work, 'carve.json');
    const r = JSON.parse(fs.readFileSync(recipeFile, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...r, data: { ...r.data, dataset: dir, valCarve: { fraction: 0.34, seed: 7 } }, epochs: 1, evaluation: { split: 'test' } }));
    // while training runs the test images are not images: decoding any of them fails the run
    const saved = testFiles.map((f) => fs.readFileSync(f));
    for (const f of testFiles) fs.writeFileSync(f, 'not an image: training must not read the test split');
    const out = path.join(work, 'ck-carve');
    let res;
    try {
      res = await runTraining({ recipe: file, checkpointRoot: out, runName: 'c', cacheDir: null });
    } finally {
      testFiles.forEach((f, i) => fs.writeFileSync(f, saved[i]));
    }
    expect(res.status).to.equal('completed');
    const run = JSON.parse(fs.readFileSync(path.join(out, 'c', 'run.json'), 'utf8'));
    expect(run.validation).to.include({ split: 'val', source: 'carved', images: 4, fraction: 0.34, seed: 7 });
    expect(run.dataset).to.include({ train: 8, val: 4, spec: dir });
    const labelOf = (id: string) => Number(fs.readFileSync(path.join(dir, 'image_class_labels.txt'), 'utf8').split('\n').find((l) => l.startsWith(`${id} `))!.split(' ')[1]);
    for (const id of run.validation.ids) expect(isTrain.get(id), `validation image ${id} comes from train`).to.equal(true);
    expect(run.validation.ids.map(labelOf).sort()).to.deep.equal([1, 1, 2, 2]); // round(6 × 0.34) = 2 per class
    // seeded: the same recipe carves the same images; another carve seed others
    const { loadDataset } = await import('../../src/data/datasets.js');
    const { resolveSplits } = await import('../../src/train/selection.js');
    const ds = await loadDataset(dir);
    const again = resolveSplits(ds, parseRecipe({ ...r, data: { ...r.data, valCarve: { fraction: 0.34, seed: 7 } } }, 'x'));
    expect(again.validation.ids).to.deep.equal(run.validation.ids);
    const other = resolveSplits(ds, parseRecipe({ ...r, data: { ...r.data, valCarve: { fraction: 0.34, seed: 8 } } }, 'x'));
    expect(other.validation.ids).to.not.deep.equal(run.validation.ids);
    expect(resolveSplits(ds, parseRecipe({ ...r, data: { ...r.data, valCarve: { perClass: 1 } } }, 'x')).val.map((x) => x.label).sort()).to.deep.equal([0, 1]);
    // the final evaluation then scores best/ on test and says which split selected it
    const { evaluateRun } = await import('../../src/train/final.js');
    const ev = await evaluateRun({ runDir: path.join(out, 'c'), recipe: res.recipe, dataset: res.dataset });
    expect(ev.run!.report.dataset).to.include({ split: 'test', images: 12 });
    expect(ev.checkpoint).to.equal(path.join(out, 'c', 'best'));
    // train-fullsup: the CAM threshold chosen by MaxBoxAcc on the carved validation images, then used on test
    const full = await evaluateRun({ runDir: path.join(out, 'c'), recipe: { ...res.recipe, evaluation: { ...res.recipe.evaluation, camThreshold: 'val' } }, dataset: res.dataset });
    const tau = full.camThreshold!;
    expect(tau.images).to.equal(4);
    expect(tau.value).to.equal(tau.run.report.metrics.localization.maxBoxAcc.perIou[0].bestThreshold);
    expect(tau.run.report.dataset).to.include({ split: 'val', images: 4 });
    expect(tau.run.report.dataset.fingerprint).to.not.equal(full.run!.report.dataset.fingerprint);
    expect(full.run!.report.settings).to.include({ camThreshold: tau.value, normalization: 'minmax' });
    expect(fs.existsSync(path.join(out, 'c', 'evaluation-val', 'evaluation.json'))).to.equal(true);
  });

  it("refuses valSplit 'test' unless selectOnTest, and then the report's first line says so", async () => {
    const file = path.join(work, 'ontest.json');
    const r = JSON.parse(fs.readFileSync(recipeFile, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...r, data: { ...r.data, valSplit: 'test' }, epochs: 1 }));
    const out = path.join(work, 'ck-ontest');
    let err: unknown;
    try { await runTraining({ recipe: file, checkpointRoot: out, runName: 't', cacheDir: null }); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/^recipe data.valSplit: 'test' selects the checkpoint on the test split.*--select-on-test/);
    expect(fs.existsSync(path.join(out, 't'))).to.equal(false);
    const res = await runTraining({ recipe: file, checkpointRoot: out, runName: 't', cacheDir: null, selectOnTest: true });
    expect(res.validation).to.include({ split: 'test', source: 'test', images: 8 });
    expect(res.notice).to.match(/^WARNING: this model was selected on the TEST split/);
    const html = fs.readFileSync(path.join(out, 't', 'report.html'), 'utf8');
    expect(html.slice(html.indexOf('<body>') + 6).trim()).to.match(/^<p[^>]*>WARNING: this model was selected on the TEST split/);
  });

  it('builds backbone + GAP head per the recipe; classifierInit zeros starts every logit at 0', async () => {
    const recipe = parseRecipe({ model: { backbone: 'vgg-tiny', head: { convFilters: 8, classifierInit: 'zeros' } }, data: { inputSize: 16 } }, 'x', 'x');
    const { cam, headLayers } = await buildRecipeModel(recipe, ['a', 'b', 'c'], createRandom(1));
    expect(headLayers).to.deep.equal(['gap_conv', 'gap_classifier']);
    expect(cam.meta.classNames).to.deep.equal(['a', 'b', 'c']);
    for (const w of cam.model.getLayer('gap_classifier').getWeights()) expect(Array.from(await w.data()).every((v) => v === 0)).to.equal(true);
    const p = cam.model.predict(tf.ones([1, 16, 16, 3])) as tf.Tensor;
    expect(Array.from(await p.data()).map((v) => v.toFixed(4))).to.deep.equal(['0.3333', '0.3333', '0.3333']);
    p.dispose();
    cam.model.dispose();
  });

  it('leaves no tensor behind over whole runs (model build, pipeline batches, validation, checkpoints)', async () => {
    const out = path.join(work, 'ck-leak');
    let i = 0;
    await expectNoTensorLeak(async () => {
      await runTraining({ recipe: recipeFile, checkpointRoot: out, runName: `l${i++}`, cacheDir: null });
    }, 2);
  });

  it('he-normal draws N(0, 2/fan-in) kernels and zero biases, from the seeded stream', async () => {
    const build = () => withRandom(createRandom(3), () => {
      const m = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [8, 8, 16], filters: 64, kernelSize: 3, biasInitializer: 'ones', name: 'k' })] });
      heNormalInit(m, ['k']);
      return m;
    });
    const m1 = await build(), m2 = await build();
    const [k, bias] = m1.getWeights();
    const v = await k.data();
    const mean = v.reduce((a, x) => a + x, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / v.length);
    expect(std).to.be.closeTo(Math.sqrt(2 / (3 * 3 * 16)), 0.01);
    expect(Math.abs(mean)).to.be.lessThan(0.01);
    expect(Array.from(await bias.data()).every((x) => x === 0)).to.equal(true);
    expect(tf.util.arraysEqual(v, await m2.getWeights()[0].data())).to.equal(true);
    m1.dispose();
    m2.dispose();
  });
});

describe('train: skipped images of several workers', () => {
  it('one list: each file once with the first worker\'s reason, in rank order', () => {
    const lists = [
      [{ file: 'a.jpg', reason: 'cannot decode image a.jpg' }, { file: 'gone.jpg', reason: 'image file not found: gone.jpg' }],
      [{ file: 'b.png', reason: 'image file is empty (0 bytes): b.png' }, { file: 'a.jpg', reason: 'another worker, another epoch' }],
      [],
    ];
    expect(mergeSkips(lists)).to.deep.equal([lists[0][0], lists[0][1], lists[1][0]]);
    expect(mergeSkips([[], []])).to.deep.equal([]);
  });
});
