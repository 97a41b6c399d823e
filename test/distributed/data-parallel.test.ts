// Synchronous data parallelism over TensorFlow's gRPC runtime, checked against one process: 2 workers with half of
// each global batch compute the same steps as 1 process with the whole batch (fused step, generic step,
// synchronised BatchNorm). Free ports on 127.0.0.1 only; every child process is bounded (startNode kills it after
// its limit).
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from '../helpers.js';
import { freePorts, skipWithoutCollectives, startNode, type Finished } from './cluster-helpers.js';

const LOSS_RTOL = 1e-5;
const WEIGHT_ATOL = 1e-4;

function expectLossesClose(actual: number[], expected: number[], what: string): void {
  expect(actual.length, what).to.equal(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i]) / Math.abs(expected[i]), `${what}: step ${i + 1} loss ${actual[i]} vs ${expected[i]}`).to.be.below(LOSS_RTOL);
  }
}

/** max |a − b| / max(1, |b|): absolute for weights up to 1, relative for larger ones (BatchNorm moving variances). */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return m;
}

function ok(d: Finished, what: string): Finished {
  expect(d.code, `${what} exited with ${d.code ?? d.signal}:\n${d.stderr.slice(-2000)}`).to.equal(0);
  return d;
}

async function workerAddresses(n: number): Promise<string> {
  return (await freePorts(n)).map((p) => `127.0.0.1:${p}`).join(',');
}

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
