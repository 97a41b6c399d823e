// Cross-check against LIBLINEAR itself (Debian's liblinear-tools: liblinear-train / liblinear-predict) when it is
// installed; skipped cleanly otherwise.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import seedrandom from 'seedrandom';
import { useEngine, makeTempDir } from '../helpers.js';
import { fitLinearSvm, predictLinearSvm } from '../../src/svm/linear-svm.js';

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Overlapping 3-class data in 5-D (so the problem is not separable and C matters). */
function problem(n: number, seed: string): { data: Float32Array; labels: number[] } {
  const c = seedrandom('liblinear-centres');
  const centres = [0, 1, 2].map(() => Array.from({ length: 5 }, () => (c() - 0.5) * 3));
  const rng = seedrandom(seed);
  const data = new Float32Array(n * 5);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const k = i % 3;
    labels.push(k);
    for (let j = 0; j < 5; j++) data[i * 5 + j] = centres[k][j] + (rng() - 0.5) * 4;
  }
  return { data, labels };
}

function toLibsvm(p: { data: Float32Array; labels: number[] }, d: number): string {
  return p.labels.map((y, i) => `${y} ` + Array.from({ length: d }, (_, j) => `${j + 1}:${p.data[i * d + j]}`).join(' ')).join('\n') + '\n';
}

/** Parses a LIBLINEAR model file into per-class weight rows (features then bias). */
function parseModel(text: string): { labels: number[]; weights: number[][] } {
  const lines = text.trim().split('\n');
  const labels = lines.find((l) => l.startsWith('label '))!.split(/\s+/).slice(1).map(Number);
  const start = lines.indexOf('w') + 1;
  const rows = lines.slice(start).map((l) => l.trim().split(/\s+/).map(Number));
  const K = rows[0].length;
  const weights = Array.from({ length: K }, (_, c) => rows.map((r) => r[c]));
  return { labels, weights };
}

describe('svm: agreement with LIBLINEAR (liblinear-tools, when installed)', function () {
  before(useEngine);
  const train = which('liblinear-train');
  const predict = which('liblinear-predict');

  for (const C of [0.05, 1]) {
    it(`gives LIBLINEAR's -s 1 -B 1 weights and predictions (C = ${C})`, function () {
      if (!train || !predict) this.skip();
      const tmp = makeTempDir('gapcam-liblinear-');
      try {
        const tr = problem(150, 'train');
        const te = problem(90, 'test');
        fs.writeFileSync(path.join(tmp, 'train.txt'), toLibsvm(tr, 5));
        fs.writeFileSync(path.join(tmp, 'test.txt'), toLibsvm(te, 5));
        const run = spawnSync(train!, ['-s', '1', '-c', String(C), '-B', '1', '-e', '1e-7', '-q', 'train.txt', 'model.txt'], { cwd: tmp, encoding: 'utf8' });
        expect(run.status, run.stderr).to.equal(0);
        const ref = parseModel(fs.readFileSync(path.join(tmp, 'model.txt'), 'utf8'));
        expect(ref.labels).to.deep.equal([0, 1, 2]);
        const ours = fitLinearSvm({ data: tr.data, rows: 150, cols: 5 }, tr.labels, ['a', 'b', 'c'], { C, scale: 'none', eps: 1e-7, maxIter: 100000 });
        for (let c = 0; c < 3; c++) for (let j = 0; j < 6; j++) expect(ours.weights[c][j]).to.be.closeTo(ref.weights[c][j], 1e-4);
        const pr = spawnSync(predict!, ['test.txt', 'model.txt', 'pred.txt'], { cwd: tmp, encoding: 'utf8' });
        expect(pr.status, pr.stderr).to.equal(0);
        const theirs = fs.readFileSync(path.join(tmp, 'pred.txt'), 'utf8').trim().split('\n').map(Number);
        const mine = predictLinearSvm(ours, { data: te.data, rows: 90, cols: 5 });
        expect(Array.from(mine.predicted)).to.deep.equal(theirs);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
});
