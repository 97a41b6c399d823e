// `gapcam train` on 2 workers over TensorFlow's gRPC runtime, checked against one process: 2 workers with half of
// each global batch compute the same steps as 1 process with the whole batch (vgg-gap-tiny, synchronised BatchNorm;
// the trainer-level fused/generic checks are in data-parallel.test.ts), and a killed worker stops the other, after
// which both resume from the chief's last checkpoint and end where an uninterrupted run ends. Free ports on 127.0.0.1 only;
// every child process is bounded (startNode kills it after its limit).
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadDataset } from '../../src/data/datasets.js';
import { WORKER_DIR_MARKER } from '../../src/distributed/worker-dir.js';
import { makeTempDir } from '../helpers.js';
import { WEIGHT_ATOL, expectLossesClose, maxAbsDiff, ok, skipWithoutCollectives, startNode, workerAddresses, type Finished } from './cluster-helpers.js';

const stepLosses = (runDir: string) => fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .map((l) => JSON.parse(l)).filter((r) => r.kind === 'step').map((r) => r.loss as number);
const lastWeights = (runDir: string) => {
  const b = fs.readFileSync(path.join(runDir, 'last', 'group1-shard1of1.bin'));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

describe('distributed: gapcam train on 2 workers (CLI)', function () {
  this.timeout(900_000);
  before(function () {
    skipWithoutCollectives(this);
  });

  it('gapcam train vgg-gap-tiny (BatchNorm): 10 steps, global batch 8 on 2 workers = batch 8 in 1 process', async () => {
    const tmp = makeTempDir('gapcam-dp-cli-');
    const dataRoot = path.join(tmp, 'data');
    await loadDataset('digits-loc', { dataRoot }); // built once here, read by the three processes
    // SGD instead of the recipe's Adam: Adam divides each gradient by its own running RMS, which turns differences
    // of float summation order (1e-7) in small gradients into update differences of order lr within a few steps
    // (measured here: 2e-5 relative in the loss by step 8, as between any two Adam runs that sum in another order).
    const common = ['src/cli.ts', 'train', 'vgg-gap-tiny', '--optimizer', 'sgd', '--max-steps', '10', '--batch-size', '8', '--no-eval', '--no-cache',
      '--data-root', dataRoot, '--checkpoints', path.join(tmp, 'ck')];
    const workers = await workerAddresses(2);
    const runs = [
      startNode([...common, '--run-name', 'single'], {}, 600_000),
      startNode([...common, '--run-name', 'dp', '--workers', workers, '--task-index', '0'], {}, 600_000),
      startNode([...common, '--run-name', 'dp', '--workers', workers, '--task-index', '1'], {}, 600_000),
    ];
    const [single, w0, w1] = await Promise.all(runs.map((r) => r.done));
    ok(single, 'single');
    ok(w0, 'worker 0');
    ok(w1, 'worker 1');
    expect(w0.stderr).to.contain('distributed: worker 0 of 2 (grpc)');
    expect(w1.stderr).to.contain('distributed: worker 1 of 2 (grpc)');
    expect(w1.stdout).to.match(/worker 1 of 2: max-steps at step 10; the chief \(worker 0\) wrote/);
    const dp = path.join(tmp, 'ck', 'dp');
    expect(fs.readdirSync(path.join(tmp, 'ck')).sort()).to.deep.equal(['dp', 'single']);
    const [dpLosses, singleLosses] = [stepLosses(dp), stepLosses(path.join(tmp, 'ck', 'single'))];
    expectLossesClose(dpLosses, singleLosses, 'vgg-gap-tiny'); // one row per step: the chief's
    const weightDiff = maxAbsDiff(lastWeights(dp), lastWeights(path.join(tmp, 'ck', 'single')));
    expect(weightDiff).to.be.below(WEIGHT_ATOL);
    // the measured agreement, for the README's figures
    const lossDiff = Math.max(...dpLosses.map((l, i) => Math.abs(l - singleLosses[i]) / Math.abs(singleLosses[i])));
    console.log(`      2 workers vs 1: max relative loss difference ${lossDiff.toExponential(2)}, max weight difference ${weightDiff.toExponential(2)}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('--skip-bad-images on 2 workers: the chief\'s skipped.txt lists what the other worker left out too', async () => {
    const tmp = makeTempDir('gapcam-dp-skip-');
    const rows = ['path,label,split'];
    for (let i = 0; i < 28; i++) {
      const f = path.join(tmp, `ok${i}.png`);
      const px = Buffer.from(new Uint8Array(24 * 20 * 3).map((_, k) => (k * 7 + i * 31) % 256));
      await sharp(px, { raw: { width: 24, height: 20, channels: 3 } }).png().toFile(f);
      rows.push(`ok${i}.png,c${i % 2},${i < 24 ? 'train' : 'test'}`);
    }
    // truncated PNGs: their headers read (the loader keeps them), their pixels do not — left out by the worker that
    // decodes them
    const whole = fs.readFileSync(path.join(tmp, 'ok0.png'));
    const bad = Array.from({ length: 6 }, (_, i) => `bad${i}.png`);
    for (const [i, f] of bad.entries()) {
      fs.writeFileSync(path.join(tmp, f), whole.subarray(0, Math.floor(whole.length * 0.6)));
      rows.push(`${f},c${i % 2},train`);
    }
    fs.writeFileSync(path.join(tmp, 'data.csv'), rows.join('\n') + '\n');
    const workers = await workerAddresses(2);
    const common = ['src/cli.ts', 'train', 'vgg-gap-tiny', '--dataset', path.join(tmp, 'data.csv'), '--skip-bad-images', '--max-steps', '3',
      '--batch-size', '8', '--no-eval', '--no-cache', '--checkpoints', path.join(tmp, 'ck'), '--run-name', 'dp', '--workers', workers];
    const [w0, w1] = await Promise.all([0, 1].map((i) => startNode([...common, '--task-index', String(i)], {}, 300_000).done));
    ok(w0, 'worker 0');
    ok(w1, 'worker 1');
    const logged = /worker 1: left out \d+ image\(s\) \(listed in the chief's skipped\.txt\): (.*)/.exec(w1.stdout + w1.stderr);
    expect(logged, 'worker 1 left out images of its own\n' + w1.stdout + w1.stderr).to.not.equal(null);
    const listed = fs.readFileSync(path.join(tmp, 'ck', 'dp', 'skipped.txt'), 'utf8').trim().split('\n').map((l) => path.basename(l.split('\t')[0]));
    for (const f of logged![1].split(', ').map((x) => path.basename(x.trim()))) expect(listed, f).to.include(f);
    expect(new Set(listed).size, 'each file once').to.equal(listed.length);
    for (const f of listed) expect(bad, f).to.include(f);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a worker killed mid-epoch stops the other with one line; both resume and end where an uninterrupted 2-worker run ends', async () => {
    const tmp = makeTempDir('gapcam-dp-kill-');
    // 2 classes × 24 train + 8 test images of 32×32 (validation carved from train): ~6 steps per epoch at batch 8, 3 epochs; plain SGD with a small
    // learning rate (a loss near 0 would make a relative tolerance meaningless).
    for (const [split, n] of [['train', 24], ['test', 8]] as const) {
      for (const cls of ['dark', 'square']) {
        const dir = path.join(tmp, 'data', split, cls);
        fs.mkdirSync(dir, { recursive: true });
        for (let i = 0; i < n; i++) {
          const px = Buffer.alloc(32 * 32 * 3);
          for (let p = 0; p < px.length; p++) px[p] = (p * 7919 + i * 104729 + (split === 'test' ? 13 : 0)) % 61;
          if (cls === 'square') for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) px.fill(250, ((((i * 3) % 24) + y) * 32 + ((i * 5) % 24) + x) * 3, ((((i * 3) % 24) + y) * 32 + ((i * 5) % 24) + x) * 3 + 3);
          await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(path.join(dir, `${i}.png`));
        }
      }
    }
    const ck = path.join(tmp, 'ck');
    const common = ['src/cli.ts', 'train', 'vgg-gap-tiny', '--dataset', `folder:${path.join(tmp, 'data')}`, '--input-size', '32',
      '--epochs', '3', '--batch-size', '8', '--optimizer', 'sgd', '--lr', '0.01', '--no-eval', '--no-cache', '--checkpoints', ck];
    const env = { GAPCAM_COLLECTIVE_TIMEOUT: '10' };
    // The reference: the same 2-worker run, uninterrupted (same summation order, so the same numbers).
    const refWorkers = await workerAddresses(2);
    const ref = [0, 1].map((i) => startNode([...common, '--run-name', 'ref', '--workers', refWorkers, '--task-index', String(i)], env, 600_000));
    let workers = await workerAddresses(2);
    const w0 = startNode([...common, '--run-name', 'dp', '--workers', workers, '--task-index', '0'], env, 600_000);
    const w1 = startNode([...common, '--run-name', 'dp', '--workers', workers, '--task-index', '1'], env, 600_000);
    // Worker 1 is killed as soon as the chief has logged a step of epoch 2 (epoch 1's checkpoint is written).
    const metrics = path.join(ck, 'dp', 'metrics.jsonl');
    const inEpoch2 = () => fs.existsSync(metrics) && fs.readFileSync(metrics, 'utf8').split('\n').some((l) => l.includes('"kind":"step"') && l.includes('"epoch":2'));
    let w1Exit: Finished | undefined;
    void w1.done.then((d) => { w1Exit = d; });
    while (!inEpoch2() && !w1Exit) await new Promise((r) => setTimeout(r, 50));
    expect(w1Exit, 'worker 1 ended before it could be killed').to.equal(undefined);
    w1.child.kill('SIGKILL');
    const stopped = await w0.done;
    expect(stopped.code, stopped.stderr.slice(-1500)).to.equal(3);
    const lines = stopped.stderr.split('\n').filter((l) => l.startsWith('gapcam:'));
    expect(lines, stopped.stderr.slice(-1500)).to.have.length(1);
    expect(lines[0]).to.match(/distributed: worker 1 \(127\.0\.0\.1:\d+\) did not answer within 10 s.*relaunch every worker with --resume/);
    await w1.done;
    // The killed worker could not remove its temporary run folder; the relaunched worker 1 does (src/distributed/worker-dir.ts).
    const leftBehind = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('gapcam-worker1-')).map((n) => path.join(os.tmpdir(), n))
      .filter((d) => { try { return JSON.parse(fs.readFileSync(path.join(d, WORKER_DIR_MARKER), 'utf8')).pid === w1.child.pid; } catch { return false; } });
    expect(leftBehind, 'the killed worker\'s temporary folder').to.have.length(1);
    // Relaunch both (new ports) with --resume: they go on from the chief's last/ (end of epoch 1 or 2).
    workers = await workerAddresses(2);
    const resumed = await Promise.all([0, 1].map((i) => startNode(['src/cli.ts', 'train', '--resume', 'dp', '--no-eval', '--no-cache', '--checkpoints', ck,
      '--workers', workers, '--task-index', String(i)], env, 600_000).done));
    resumed.forEach((d, i) => ok(d, `resumed worker ${i}`));
    expect(fs.existsSync(leftBehind[0]), 'the stale folder was removed at the relaunch').to.equal(false);
    (await Promise.all(ref.map((r) => r.done))).forEach((d, i) => ok(d, `reference worker ${i}`));
    const dpLosses = stepLosses(path.join(ck, 'dp'));
    expect(dpLosses.length).to.be.above(12); // 3 epochs of the train images left after the carved validation split
    expectLossesClose(dpLosses, stepLosses(path.join(ck, 'ref')), 'resumed run');
    expect(maxAbsDiff(lastWeights(path.join(ck, 'dp')), lastWeights(path.join(ck, 'ref')))).to.be.below(WEIGHT_ATOL);
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});
