// Bad inputs (issue 12): --skip-bad-images skips missing, empty and undecodable files in every command that reads a
// dataset and lists them in the command's outputs; a one-class dataset is a one-line error (it was
// "internal error: Error in oneHot: depth must be >=2"), raised by the dataset layer so train and transfer get it too.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { runMain, gapcamStderr } from '../engine/run-cli.js';
import { writeTinyModel } from '../cam/fixtures.js';
import { encodePng } from '../../src/data/image.js';
import { loadDataset } from '../../src/data/datasets.js';
import { UserError } from '../../src/errors.js';

async function png(file: string, w: number, h: number, seed: number): Promise<void> {
  const data = new Uint8Array(w * h * 3).map((_, i) => (i * 7 + seed * 31) % 256);
  fs.writeFileSync(file, await encodePng({ data, width: w, height: h }));
}

function oneLine(r: { code: number; stderr: string }): string {
  expect(r.code, r.stderr).to.equal(2);
  const lines = gapcamStderr(r.stderr).filter((l) => l.startsWith('gapcam: ') && !l.startsWith('gapcam: engine'));
  expect(lines, r.stderr).to.have.length(1);
  expect(r.stderr).to.not.match(/internal error/);
  return lines[0];
}

describe('cli: bad images and one-class datasets', function () {
  this.timeout(120_000);
  let tmp: string;
  let model: string;
  let manifest: string;
  const bad = ['empty.png', 'missing.png', 'truncated.png'];
  before(async () => {
    await useEngine();
    tmp = makeTempDir('gapcam-bad-');
    model = await writeTinyModel(tmp);
    const img = path.join(tmp, 'img');
    fs.mkdirSync(img);
    const rows = ['path,label,split'];
    for (let i = 0; i < 6; i++) {
      await png(path.join(img, `ok${i}.png`), 20 + i, 18, i);
      rows.push(`img/ok${i}.png,c${i % 2},test`);
    }
    fs.writeFileSync(path.join(img, 'empty.png'), '');
    const whole = fs.readFileSync(path.join(img, 'ok0.png'));
    fs.writeFileSync(path.join(img, 'truncated.png'), whole.subarray(0, Math.floor(whole.length * 0.6))); // a readable header, broken data
    for (const f of bad) rows.push(`img/${f},c0,test`);
    manifest = path.join(tmp, 'data.csv');
    fs.writeFileSync(manifest, rows.join('\n') + '\n');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('features and evaluate stop at the first bad file in one line without --skip-bad-images', async () => {
    expect(oneLine(await runMain(['features', model, '--dataset', manifest, '--out', path.join(tmp, 'f0')]))).to.match(/empty\.png|missing\.png/);
    expect(oneLine(await runMain(['evaluate', model, '--dataset', manifest, '--out', path.join(tmp, 'e0')]))).to.match(/empty\.png|missing\.png/);
  });

  it('features --skip-bad-images leaves out empty, missing and undecodable files and lists them in features.json', async () => {
    const out = path.join(tmp, 'f1');
    const r = await runMain(['features', model, '--dataset', manifest, '--skip-bad-images', '--out', out]);
    expect(r.code, r.stderr).to.equal(0);
    const meta = JSON.parse(fs.readFileSync(path.join(out, 'features.json'), 'utf8'));
    expect(meta.count).to.equal(6);
    expect(meta.extra.skippedImages.map((s: { path: string }) => path.basename(s.path)).sort()).to.deep.equal(bad);
    for (const f of bad) expect(r.stdout).to.include(`skipped ${path.join(tmp, 'img', f)}`);
  });

  it('evaluate --skip-bad-images (new) evaluates the rest and writes skipped.txt', async () => {
    const out = path.join(tmp, 'e1');
    const r = await runMain(['evaluate', model, '--dataset', manifest, '--skip-bad-images', '--out', out]);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(fs.readFileSync(path.join(out, 'evaluation.json'), 'utf8')).metrics.images).to.equal(6);
    const listed = fs.readFileSync(path.join(out, 'skipped.txt'), 'utf8').trim().split('\n').map((l) => path.basename(l.split('\t')[0]));
    expect(listed.sort()).to.deep.equal(bad);
    expect(r.stdout).to.match(/skipped\.txt/);
  });

  it('cam --dataset skips them too and lists them in cam.json', async () => {
    const out = path.join(tmp, 'c1');
    const r = await runMain(['cam', model, '--dataset', manifest, '--out', out]);
    expect(r.code, r.stderr).to.equal(0);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'cam.json'), 'utf8'));
    expect(json.summary.skipped.map((s: { file: string }) => path.basename(s.file)).sort()).to.deep.equal(bad);
  });

  it('a one-class dataset is a one-line error for training and SVM protocols, not for evaluation with a model', async () => {
    const one = path.join(tmp, 'one.csv');
    fs.writeFileSync(one, ['path,label,split', ...[0, 1, 2, 3].map((i) => `img/ok${i}.png,c0,${i < 2 ? 'train' : 'test'}`)].join('\n') + '\n');
    let err: unknown;
    await loadDataset(one).catch((e: unknown) => { err = e; });
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/^dataset 'one\.csv' \(.*\) has images of only 1 class \(c0\); training a classifier needs at least 2 classes/);
    // the train command (a shipped recipe, one step): the loader's message, before any model is built; its checkpoint
    // root is --checkpoints (formerly --out)
    const root = /--checkpoints/.test((await runMain(['train', '--help'])).stdout) ? '--checkpoints' : '--out';
    const msg = oneLine(await runMain(['train', 'vgg-gap-tiny', '--dataset', one, root, path.join(tmp, 'runs'), '--max-steps', '1']));
    expect(msg).to.match(/has images of only 1 class \(c0\); training a classifier needs at least 2 classes/);
    // evaluation and CAMs classify with the model's own classes: one class is fine there
    expect((await runMain(['evaluate', model, '--dataset', one, '--out', path.join(tmp, 'e-one')])).code).to.equal(0);
  });

  it('a bad decode setting in the environment is refused by train in one line before anything is written', async () => {
    const runs = path.join(tmp, 'runs-env');
    for (const [name, value] of [['GAPCAM_IMAGE_CACHE_MB', 'lots'], ['GAPCAM_DECODE_WORKERS', '-1'], ['GAPCAM_DECODE_NICE', '40'], ['GAPCAM_DECODE_CACHE_MB', 'x']]) {
      const msg = oneLine(await runMain(['train', 'vgg-gap-tiny', '--dataset', manifest, '--checkpoints', runs, '--max-steps', '1'], { [name]: value }));
      expect(msg, name).to.contain(name).and.to.contain(`'${value}'`);
      expect(fs.existsSync(runs), `${name}: nothing written`).to.equal(false);
    }
  });
});
