// Never destroy what the user has (issue 12): every command with --out writes into an existing folder, replaces only
// its own files, refuses a file, a training checkpoint and (where its --help says so) a previous result without
// --force. Runs the real command line in-process on a tiny saved model and a tiny VOC folder made here.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { runMain, gapcamStderr } from '../engine/run-cli.js';
import { writeTinyModel, writeVocFolder } from '../cam/fixtures.js';

/** A folder holding an unrelated file and a subfolder with a file: what every command must leave alone. */
function userFolder(root: string, name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine\n');
  fs.writeFileSync(path.join(dir, 'sub', 'keep.txt'), 'also mine\n');
  return dir;
}

function expectUserFilesIntact(dir: string): void {
  expect(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8'), `${dir}/notes.txt`).to.equal('mine\n');
  expect(fs.readFileSync(path.join(dir, 'sub', 'keep.txt'), 'utf8'), `${dir}/sub/keep.txt`).to.equal('also mine\n');
}

/** No temporary file (.name.tmp-pid-time) left anywhere under `dir`. */
function expectNoTemps(dir: string): void {
  const temps = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.tmp-\d+-\d+$/.test(f));
  expect(temps, `temporary files under ${dir}`).to.deep.equal([]);
}

function expectOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  const lines = gapcamStderr(r.stderr).filter((l) => l.startsWith('gapcam: ') && !l.startsWith('gapcam: engine'));
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(pattern);
  expect(r.stderr).to.not.match(/internal error|\n\s+at /);
}

describe('cli: --out folders are written into, never replaced', function () {
  this.timeout(120_000);
  let tmp: string;
  let model: string;
  let voc: string;
  let features: string;
  let experiment: string;
  before(async () => {
    await useEngine();
    tmp = makeTempDir('gapcam-out-');
    model = await writeTinyModel(tmp);
    voc = await writeVocFolder(tmp, 10);
    experiment = path.join(tmp, 'exp.json');
    fs.writeFileSync(experiment, JSON.stringify({
      kind: 'transfer', sources: [{ name: 'tiny', checkpoint: model }],
      datasets: [{ name: 'voc', dataset: voc, protocol: 'dataset' }], svm: { cGrid: [1] },
    }));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // Each command, its --out, and a file it must have written there.
  const commands: { name: string; args: (out: string) => string[]; writes: string }[] = [
    { name: 'evaluate', args: (out) => ['evaluate', model, '--dataset', voc, '--out', out], writes: 'evaluation.json' },
    { name: 'features', args: (out) => ['features', model, '--dataset', voc, '--out', out], writes: 'features.npy' },
    { name: 'svm', args: (out) => ['svm', '--train', features, '--train-split', 'train', '--test-split', 'test', '--c-grid', '1', '--out', out], writes: 'svm.json' },
    { name: 'model export tfjs', args: (out) => ['model', 'export', model, '--format', 'tfjs', '--out', out], writes: 'model.json' },
    { name: 'model export keras-h5', args: (out) => ['model', 'export', model, '--format', 'keras-h5', '--out', out], writes: 'tiny_gap_dense.h5' },
    { name: 'model surgery', args: (out) => ['model', 'surgery', model, '--cut-at', 'feat', '--classes', 'a,b', '--conv-filters', '0', '--out', out], writes: 'meta.json' },
    { name: 'cam', args: (out) => ['cam', model, path.join(voc, 'images'), '--out', out], writes: 'cam.json' },
    { name: 'transfer', args: (out) => ['transfer', experiment, '--out', out], writes: 'results.json' },
  ];

  it('every command with --out keeps an unrelated file and subfolder there, and leaves no temporary file', async () => {
    features = path.join(tmp, 'features-for-svm');
    expect((await runMain(['features', model, '--dataset', voc, '--out', features])).code).to.equal(0);
    for (const c of commands) {
      const out = userFolder(tmp, `out-${c.name.replace(/ /g, '-')}`);
      const r = await runMain(c.args(out));
      expect(r.code, `${c.name}: ${r.stderr}`).to.equal(0);
      expect(fs.existsSync(path.join(out, c.writes)), `${c.name} wrote ${c.writes}`).to.equal(true);
      expectUserFilesIntact(out);
      expectNoTemps(out);
    }
  });

  it('evaluate --out at the folder holding the evaluated model keeps the model (the `--out runs` data loss)', async () => {
    const r = await runMain(['evaluate', model, '--dataset', voc, '--out', path.dirname(model)]);
    expect(r.code, r.stderr).to.equal(0);
    expect(fs.readdirSync(model).sort()).to.include.members(['model.json', 'meta.json', 'classes.txt']);
    expect(fs.existsSync(voc)).to.equal(true);
    expect((await runMain(['evaluate', model, '--dataset', voc, '--out', tmp])).code).to.equal(0);
  });

  it('--out naming an existing regular file is a one-line error and the file is unchanged', async () => {
    const file = path.join(tmp, 'a-file.txt');
    fs.writeFileSync(file, 'precious\n');
    for (const c of commands.filter((x) => x.name !== 'model export keras-h5')) {
      const r = await runMain(c.args(file));
      expectOneLineError(r, new RegExp(`--out ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is a file`));
      expect(fs.readFileSync(file, 'utf8')).to.equal('precious\n');
    }
  });

  it('a rerun replaces its own files (evaluate, svm) or refuses without --force (model, cam, features of other settings)', async () => {
    const evalOut = userFolder(tmp, 'rerun-eval');
    expect((await runMain(['evaluate', model, '--dataset', voc, '--out', evalOut])).code).to.equal(0);
    expect((await runMain(['evaluate', model, '--dataset', voc, '--out', evalOut, '--limit', '2'])).code).to.equal(0);
    expect(JSON.parse(fs.readFileSync(path.join(evalOut, 'evaluation.json'), 'utf8')).dataset.images).to.equal(2);
    expectUserFilesIntact(evalOut);

    const modelOut = userFolder(tmp, 'rerun-model');
    expect((await runMain(['model', 'export', model, '--format', 'tfjs', '--out', modelOut])).code).to.equal(0);
    expectOneLineError(await runMain(['model', 'export', model, '--format', 'tfjs', '--out', modelOut]), /already holds a result of gapcam model export \(model\.json\); pass --force/);
    expectOneLineError(await runMain(['model', 'surgery', model, '--cut-at', 'feat', '--classes', '2', '--conv-filters', '0', '--out', modelOut]), /pass --force/);
    expect((await runMain(['model', 'surgery', model, '--cut-at', 'feat', '--classes', 'p,q', '--conv-filters', '0', '--out', modelOut, '--force'])).code).to.equal(0);
    expect(JSON.parse(fs.readFileSync(path.join(modelOut, 'meta.json'), 'utf8')).classNames).to.deep.equal(['p', 'q']);
    expectUserFilesIntact(modelOut);

    const camOut = userFolder(tmp, 'rerun-cam');
    expect((await runMain(['cam', model, path.join(voc, 'images'), '--out', camOut, '--limit', '1'])).code).to.equal(0);
    expectOneLineError(await runMain(['cam', model, path.join(voc, 'images'), '--out', camOut, '--limit', '1']), /already holds a result of gapcam cam .*--force/);
    expect((await runMain(['cam', model, path.join(voc, 'images'), '--out', camOut, '--limit', '1', '--force'])).code).to.equal(0);
    expectUserFilesIntact(camOut);

    const featOut = userFolder(tmp, 'rerun-features');
    expect((await runMain(['features', model, '--dataset', voc, '--out', featOut])).code).to.equal(0);
    const same = await runMain(['features', model, '--dataset', voc, '--out', featOut]);
    expect(same.code).to.equal(0);
    expect(same.stdout).to.match(/^reused /m);
    expectOneLineError(await runMain(['features', model, '--dataset', voc, '--split', 'test', '--out', featOut]), /already holds a result of gapcam features .*--force/);
    expect((await runMain(['features', model, '--dataset', voc, '--split', 'test', '--out', featOut, '--force'])).code).to.equal(0);
    expectUserFilesIntact(featOut);
  });

  it('a folder with files another tool wrote under our names, or training state, is refused', async () => {
    const foreign = userFolder(tmp, 'foreign');
    fs.writeFileSync(path.join(foreign, 'model.json'), '{"not": "svm"}');
    expectOneLineError(await runMain(['svm', '--train', features, '--train-split', 'train', '--test-split', 'test', '--c-grid', '1', '--out', foreign]),
      /holds model\.json, which gapcam svm did not write/);
    expect(fs.readFileSync(path.join(foreign, 'model.json'), 'utf8')).to.equal('{"not": "svm"}');

    // `model export <run>/last --out <run>/last` deleted optimizer.bin and train-state.json: the run could not resume
    const checkpoint = path.join(tmp, 'run', 'last');
    fs.cpSync(model, checkpoint, { recursive: true });
    fs.writeFileSync(path.join(checkpoint, 'optimizer.bin'), 'state');
    fs.writeFileSync(path.join(checkpoint, 'train-state.json'), '{}');
    for (const force of [[], ['--force']]) {
      expectOneLineError(await runMain(['model', 'export', checkpoint, '--format', 'tfjs', '--out', checkpoint, ...force]), /is a training checkpoint \(holds optimizer\.bin, train-state\.json\)/);
      expectOneLineError(await runMain(['model', 'export', checkpoint, '--format', 'keras-h5', '--out', checkpoint, ...force]), /is a training checkpoint/);
    }
    expect(fs.readFileSync(path.join(checkpoint, 'optimizer.bin'), 'utf8')).to.equal('state');
    expect(fs.readdirSync(checkpoint).sort()).to.deep.equal(['classes.txt', 'group1-shard1of1.bin', 'meta.json', 'model.json', 'optimizer.bin', 'train-state.json']);
  });
});
