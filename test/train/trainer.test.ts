import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir, expectNoTensorLeak } from '../helpers.js';
import { train, collectParams, TrainingDivergedError } from '../../src/train/trainer.js';
import { memoryData } from '../../src/train/data.js';
import { loadLastCheckpoint, readTrainState } from '../../src/train/checkpoint.js';
import { readMetrics } from '../../src/train/metrics.js';
import { loadCamModel } from '../../src/models/meta.js';
import { LineProgress } from '../../src/train/progress.js';
import { tinyCam, tinySet, tinyRecipe, weightsOf, TINY_HEAD } from './tiny.js';

describe('train: the loop', function () {
  before(useEngine);
  let trainSet: { images: tf.Tensor4D; labels: Int32Array };
  let valSet: { images: tf.Tensor4D; labels: Int32Array };
  before(() => {
    trainSet = tinySet(64, 1);
    valSet = tinySet(32, 2);
  });
  after(() => {
    tf.dispose([trainSet.images, valSet.images]);
  });
  const data = (batchSize: number, seed = 3) => memoryData({ images: trainSet.images, labels: trainSet.labels, numClasses: 2, batchSize, seed,
    valImages: valSet.images, valLabels: valSet.labels });

  it('learns the tiny set and leaves best/last loadable, metrics.jsonl/csv and report.html', async () => {
    const runDir = makeTempDir();
    const recipe = tinyRecipe({ epochs: 8, lr: 0.05, optimizer: { type: 'adam' }, schedule: { type: 'cosine', warmupEpochs: 1 } });
    const cam = await tinyCam(11);
    const lines: string[] = [];
    const res = await train({ recipe, cam, data: data(8), runDir, headLayers: TINY_HEAD, progress: new LineProgress((s) => lines.push(s)) });
    expect(res.status).to.equal('completed');
    expect(res.epochsDone).to.equal(8);
    expect(res.globalStep).to.equal(64);
    expect(res.best!.valAcc).to.be.greaterThan(0.9);
    const rows = readMetrics(runDir);
    expect(rows.filter((r) => r.kind === 'step')).to.have.length(64);
    expect(rows.filter((r) => r.kind === 'epoch')).to.have.length(8);
    for (const r of rows) for (const k of ['loss', 'acc', 'lr', 'imagesPerSec', 'seconds'] as const) expect(Number.isFinite(r[k]), k).to.equal(true);
    const csv = fs.readFileSync(path.join(runDir, 'metrics.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).to.equal('kind,epoch,step,loss,acc,val_loss,val_acc,lr,images_per_sec,seconds,best');
    expect(csv).to.have.length(1 + 72);
    // warm-up: the first step runs at 1 % of the rate, cosine ends near 0
    expect(rows[0].lr).to.be.closeTo(0.05 * 0.01, 1e-9);
    const html = fs.readFileSync(path.join(runDir, 'report.html'), 'utf8');
    expect(html).to.contain('<svg').and.to.contain('Learning rate').and.to.contain('&quot;headLrMultiplier&quot;').and.not.to.contain('<script');
    expect(lines.some((l) => l.startsWith('epoch 8/8: loss'))).to.equal(true);
    // last is the final model, bit for bit; best is a loadable model of the best epoch
    const last = await loadCamModel(path.join(runDir, 'last'));
    const a = cam.model.predict(valSet.images) as tf.Tensor;
    const b = last.model.predict(valSet.images) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).to.equal(0);
    expect(last.meta.classifierLayer).to.equal('predictions');
    const best = await loadCamModel(path.join(runDir, 'best'));
    expect(readTrainState(path.join(runDir, 'best')).state.epoch).to.equal(res.best!.epoch);
    tf.dispose([a, b]);
    last.model.dispose();
    best.model.dispose();
    cam.model.dispose();
  });

  it('keeps frozen layers still and moves the head by its multiplier (plain SGD, one step)', async () => {
    const base = tinyRecipe({ optimizer: { type: 'sgd', momentum: 0 }, lr: 0.1, batchSize: 64, epochs: 1 });
    const withMult = { ...base, headLrMultiplier: 10, freeze: { layers: ['c1'], epochs: null } };
    const camA = await tinyCam(5);
    const camB = await tinyCam(5);
    const w0 = await weightsOf(camA.model);
    expect([...(await weightsOf(camB.model)).entries()].every(([k, v]) => tf.util.arraysEqual(v, w0.get(k)!))).to.equal(true);
    await train({ recipe: withMult, cam: camA, data: data(64), runDir: makeTempDir(), headLayers: TINY_HEAD, maxSteps: 1 });
    await train({ recipe: base, cam: camB, data: data(64), runDir: makeTempDir(), headLayers: TINY_HEAD, maxSteps: 1 });
    const wA = await weightsOf(camA.model);
    const wB = await weightsOf(camB.model);
    for (const k of ['c1/kernel', 'c1/bias']) expect(tf.util.arraysEqual(wA.get(k)!, w0.get(k)!), k).to.equal(true);
    for (const k of ['cam_conv/kernel', 'predictions/kernel', 'predictions/bias', 'c2/kernel']) {
      const d0 = w0.get(k)!;
      const dA = wA.get(k)!.map((v, i) => v - d0[i]);
      const dB = wB.get(k)!.map((v, i) => v - d0[i]);
      const ratio = k.startsWith('c2') ? 1 : 10;
      let nonzero = 0;
      for (let i = 0; i < d0.length; i++) {
        expect(dA[i], `${k}[${i}]`).to.be.closeTo(ratio * dB[i], 1e-6 + 1e-3 * Math.abs(ratio * dB[i]));
        if (Math.abs(dB[i]) > 1e-7) nonzero++;
      }
      expect(nonzero, `${k} moved`).to.be.greaterThan(0);
    }
    camA.model.dispose();
    camB.model.dispose();
  });

  it('unfreezes after freeze.epochs, decays kernels only, and applies prefix multipliers', async () => {
    const cam = await tinyCam(5);
    const r = tinyRecipe({ freeze: { layers: ['c1', 'c2'], epochs: 2 }, weightDecay: 0.01, lrMultipliers: { c: 3, cam_: 5 }, headLrMultiplier: 10 });
    const e0 = collectParams(cam.model, r, ['predictions'], 0);
    expect(e0.frozenLayers).to.deep.equal(['c1', 'c2']);
    const e2 = collectParams(cam.model, r, ['predictions'], 2);
    expect(e2.frozenLayers).to.deep.equal([]);
    const by = new Map(e2.params.map((p) => [p.key, p]));
    expect([...by.keys()]).to.deep.equal(['c1/kernel', 'c1/bias', 'c2/kernel', 'c2/bias', 'cam_conv/kernel', 'cam_conv/bias', 'predictions/kernel', 'predictions/bias']);
    expect(by.get('c1/kernel')!.lrMult).to.equal(3);
    expect(by.get('cam_conv/kernel')!.lrMult).to.equal(5);
    expect(by.get('predictions/bias')!.lrMult).to.equal(10);
    expect(by.get('c2/kernel')!.decay).to.equal(0.01);
    expect(by.get('c2/bias')!.decay).to.equal(0);
    cam.model.dispose();
  });

  it('resumes exactly: 2 epochs straight == stops mid-epoch and at an epoch end, then resumes (momentum, dropout, cosine)', async () => {
    const recipe = tinyRecipe({ epochs: 2, lr: 0.05, optimizer: { type: 'sgd', momentum: 0.9 }, schedule: { type: 'cosine' }, weightDecay: 1e-3,
      headLrMultiplier: 3 });
    const straightDir = makeTempDir();
    const straight = await tinyCam(21, 2, { dropout: 0.3 });
    await train({ recipe, cam: straight, data: data(8), runDir: straightDir, headLayers: TINY_HEAD });

    const dir = makeTempDir();
    const first = await tinyCam(21, 2, { dropout: 0.3 });
    const r1 = await train({ recipe, cam: first, data: data(8), runDir: dir, headLayers: TINY_HEAD, maxSteps: 8 }); // exactly one epoch's steps
    expect(r1.status).to.equal('max-steps');
    first.model.dispose();
    let ck = await loadLastCheckpoint(dir);
    expect(ck.state.globalStep).to.equal(8);
    expect(ck.optimizer!.slots.length).to.be.greaterThan(0);
    const r2 = await train({ recipe, cam: ck.cam, data: data(8), runDir: dir, headLayers: TINY_HEAD, resume: ck, maxSteps: 3 });
    expect(r2.globalStep).to.equal(11);
    ck.cam.model.dispose();
    ck = await loadLastCheckpoint(dir);
    const r3 = await train({ recipe, cam: ck.cam, data: data(8), runDir: dir, headLayers: TINY_HEAD, resume: ck });
    expect(r3.status).to.equal('completed');
    expect(r3.globalStep).to.equal(16);

    const ws = await weightsOf(straight.model);
    const wr = await weightsOf(ck.cam.model);
    for (const [k, v] of ws) {
      const u = wr.get(k)!;
      let maxDiff = 0;
      for (let i = 0; i < v.length; i++) maxDiff = Math.max(maxDiff, Math.abs(v[i] - u[i]));
      expect(maxDiff, k).to.be.lessThan(1e-5);
    }
    const ma = readMetrics(straightDir), mb = readMetrics(dir);
    expect(mb.map((r) => `${r.kind}${r.step}`)).to.deep.equal(ma.map((r) => `${r.kind}${r.step}`));
    for (let i = 0; i < ma.length; i++) {
      expect(mb[i].loss).to.be.closeTo(ma[i].loss, 1e-5);
      expect(mb[i].lr).to.equal(ma[i].lr);
    }
    straight.model.dispose();
    ck.cam.model.dispose();
  });

  it('stops on a non-finite loss naming the step and lr, keeping the last good checkpoint', async () => {
    const dir = makeTempDir();
    const cam = await tinyCam(3);
    await train({ recipe: tinyRecipe({ epochs: 1 }), cam, data: data(8), runDir: dir, headLayers: TINY_HEAD });
    const before = readTrainState(path.join(dir, 'last')).state;
    const wBefore = fs.readFileSync(path.join(dir, 'last', 'group1-shard1of1.bin'));
    const ck = await loadLastCheckpoint(dir);
    let err: unknown;
    try {
      await train({ recipe: tinyRecipe({ epochs: 2, lr: 1e30, optimizer: { type: 'sgd', momentum: 0 } }), cam: ck.cam, data: data(8), runDir: dir,
        headLayers: TINY_HEAD, resume: ck });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(TrainingDivergedError);
    const msg = (err as Error).message;
    // Which check fires first depends on the engine: TensorFlow's Relu passes NaN on (the loss turns NaN), oneDNN's
    // fused conv + bias + ReLU maps NaN to 0 as Keras' oneDNN graphs do (the head-weight check after the update fires).
    expect(msg).to.match(/(loss is (NaN|Infinity|-Infinity)|weight \S+ is not finite) at step (9|10|11) /).and.to.contain('learning rate 1.000e+30');
    expect(msg.split('\n')).to.have.length(1);
    expect(readTrainState(path.join(dir, 'last')).state.globalStep).to.equal(before.globalStep);
    expect(fs.readFileSync(path.join(dir, 'last', 'group1-shard1of1.bin')).equals(wBefore)).to.equal(true);
    cam.model.dispose();
    ck.cam.model.dispose();
  });

  it('an abort finishes the step, writes last and reports interrupted; resuming goes on', async () => {
    const dir = makeTempDir();
    const cam = await tinyCam(4);
    const ac = new AbortController();
    const progress = new LineProgress(() => undefined);
    const origStep = progress.step.bind(progress);
    progress.step = (i) => {
      origStep(i);
      if (i.globalStep === 3) ac.abort();
    };
    const res = await train({ recipe: tinyRecipe(), cam, data: data(8), runDir: dir, headLayers: TINY_HEAD, signal: ac.signal, progress });
    expect(res.status).to.equal('interrupted');
    const ck = await loadLastCheckpoint(dir);
    expect(ck.state.globalStep).to.equal(3);
    expect(ck.state.stepInEpoch).to.equal(3);
    const res2 = await train({ recipe: tinyRecipe(), cam: ck.cam, data: data(8), runDir: dir, headLayers: TINY_HEAD, resume: ck });
    expect(res2.status).to.equal('completed');
    expect(res2.globalStep).to.equal(16);
    cam.model.dispose();
    ck.cam.model.dispose();
  });

  it('does not leak tensors over steps and epochs', async () => {
    const cam = await tinyCam(8, 2, { batchNorm: true, dropout: 0.2 });
    const d = data(8);
    await expectNoTensorLeak(async () => {
      await train({ recipe: tinyRecipe({ epochs: 2, optimizer: { type: 'adam' }, lr: 0.01 }), cam, data: d, runDir: makeTempDir(), headLayers: TINY_HEAD });
    });
    cam.model.dispose();
  });
});
