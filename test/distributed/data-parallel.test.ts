// Synchronous data parallelism over TensorFlow's gRPC runtime, checked against one process: 2 workers with half of
// each global batch compute the same steps as 1 process with the whole batch (fused step, generic step,
// synchronised BatchNorm). Free ports on 127.0.0.1 only; every child process is bounded (startNode kills it after
// its limit).
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from '../helpers.js';
import { WEIGHT_ATOL, expectLossesClose, maxAbsDiff, ok, skipWithoutCollectives, startNode, workerAddresses } from './cluster-helpers.js';

describe('distributed: data-parallel training, 2 workers vs 1 process', function () {
  this.timeout(900_000);
  before(function () {
    skipWithoutCollectives(this);
  });

  it('tiny chain model: fused step, generic step and synchronised BatchNorm give the single-process steps', async () => {
    const out = makeTempDir('gapcam-dp-');
    const workers = await workerAddresses(2);
    const runs = [['single'], [workers, '0'], [workers, '1']].map((a) => startNode(['test/distributed/train-worker.ts', out, ...a], {}, 600_000));
    const [single, w0, w1] = (await Promise.all(runs.map((r) => r.done))).map((d, i) => JSON.parse(ok(d, `process ${i}`).stdout.trim().split('\n').pop()!));
    for (const step of ['fused', 'generic', 'batchnorm']) {
      const s = single[step];
      expect(s.losses).to.have.length(10);
      for (const w of [w0, w1]) {
        expectLossesClose(w[step].losses, s.losses, `${step} step`);
        for (const [k, v] of Object.entries(s.weights as Record<string, number[]>)) {
          expect(maxAbsDiff(w[step].weights[k], v), `${step}: ${k}`).to.be.below(WEIGHT_ATOL);
        }
        expect(w[step].epoch[0].valAcc, `${step}: sharded validation`).to.equal(s.epoch[0].valAcc);
        expect(w[step].epoch[0].valLoss).to.be.closeTo(s.epoch[0].valLoss, 1e-6);
        expect(w[step].tensors, `${step}: live tensors after training`).to.equal(s.tensors);
      }
    }
    expect(w0.fused.stepLine).to.equal('training step: fused (src/perf)');
    expect(w0.batchnorm.stepLine).to.match(/generic .*synchronised BatchNorm/);
    fs.rmSync(out, { recursive: true, force: true });
  });
});
