// User errors through the real command line (main() in-process): for every command, a representative mistake gives
// exactly one stderr line naming the thing, what was expected and what was found, exit code 2, and nothing on stdout;
// --verbose adds the stack trace. Inputs are tiny files in a temp folder, so no case trains or loads a big model.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { runMain, type CliResult } from '../engine/run-cli.js';
import { writeTinyModel, writeImageFolder } from '../cam/fixtures.js';

function expectUserError(r: CliResult, pattern: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n');
  expect(r.code, `exit code (stderr: ${r.stderr})`).to.equal(2);
  expect(lines, `stderr is one line: ${r.stderr}`).to.have.length(1);
  expect(lines[0]).to.match(/^gapcam: /);
  expect(lines[0]).to.match(pattern);
  expect(r.stdout, 'nothing on stdout').to.equal('');
}

/** Like expectUserError, for commands that print the one-line engine summary first. */
function expectUserErrorAfterEngine(r: CliResult, pattern: RegExp): void {
  const lines = r.stderr.trimEnd().split('\n');
  expect(r.code, `exit code (stderr: ${r.stderr})`).to.equal(2);
  expect(lines, `stderr: the engine line, then one error line: ${r.stderr}`).to.have.length(2);
  expect(lines[0]).to.match(/^engine \S+ \(tfjs /);
  expect(lines[1]).to.match(/^gapcam: /);
  expect(lines[1]).to.match(pattern);
  expect(r.stdout, 'nothing on stdout').to.equal('');
}

describe('cli: one-line user errors, exit 2, for every command', function () {
  this.timeout(60_000);
  let tmp: string;
  let model: string;
  let images: string;
  let corrupt: string;

  before(async () => {
    await useEngine();
    tmp = makeTempDir('gapcam-cli-');
    model = await writeTinyModel(tmp);
    images = await writeImageFolder(tmp, [[24, 24]]);
    corrupt = path.join(tmp, 'broken.jpg');
    fs.writeFileSync(corrupt, Buffer.from('this is not a JPEG'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const out = () => path.join(tmp, 'out');
  const missing = () => path.join(tmp, 'no-such-thing');

  it('train: an unknown recipe', async () => {
    expectUserError(await runMain(['train', 'no-such-recipe', '--checkpoints', out()]), /recipe.*no-such-recipe/);
  });

  it('train: a bad --max-steps value', async () => {
    expectUserError(await runMain(['train', 'vgg-gap-tiny', '--max-steps', '0', '--checkpoints', out()]), /^gapcam: --max-steps: expected a positive integer; got 0$/);
  });

  it('train and demo: --out is refused with one line pointing to --checkpoints (where run folders go)', async () => {
    for (const args of [['train', 'vgg-gap-tiny'], ['train', '--resume', 'x'], ['demo']]) {
      expectUserError(await runMain([...args, '--out', out()]),
        new RegExp(`^gapcam: Unknown option '--out' for 'gapcam ${args[0]}'; did you mean '--checkpoints'\\? \\(the folder that holds the run folders; default checkpoints/\\)$`));
    }
    expect(fs.existsSync(out())).to.equal(false);
  });

  it('--out is an option only of the commands that write an output folder: the others refuse it as unknown', async () => {
    for (const args of [['models'], ['recipes'], ['engine'], ['datasets'], ['model', 'summary', model]]) {
      const where = `gapcam ${args[0] === 'model' ? 'model summary' : args[0]}`;
      for (const given of [['--out', out()], [`--out=${out()}`]]) {
        expectUserError(await runMain([...args, ...given]),
          new RegExp(`^gapcam: Unknown option '--out' for '${where}': it writes no output folder \\(${where} --help lists the options\\)$`));
      }
    }
    expect(fs.existsSync(out())).to.equal(false);
    // the writing commands list it in their help, the top-level help (global options) does not
    for (const args of [['evaluate'], ['features'], ['cam'], ['svm'], ['transfer'], ['merge'], ['model', 'surgery'], ['model', 'export']]) {
      expect((await runMain([...args, '--help'])).stdout, args.join(' ')).to.match(/^ +--out +\S/m);
    }
    for (const args of [[], ['models'], ['train'], ['model', 'summary']]) {
      expect((await runMain([...args, '--help'])).stdout, args.join(' ')).to.not.match(/^ +--out /m);
    }
    expectUserError(await runMain(['cam', model, images]), /^gapcam: 'gapcam cam' needs option '--out'/);
  });

  it('evaluate: a missing checkpoint', async () => {
    expectUserError(await runMain(['evaluate', missing(), '--dataset', images]), /^gapcam: model '.*no-such-thing': not a model folder/);
  });

  it('evaluate: a missing dataset (found after the engine starts: its summary line, then the one error line)', async () => {
    expectUserErrorAfterEngine(await runMain(['evaluate', model, '--dataset', missing(), '--out', out()]), /^gapcam: unknown dataset '.*no-such-thing'/);
  });

  it('cam: a missing image file', async () => {
    expectUserError(await runMain(['cam', model, path.join(tmp, 'nope.png'), '--out', out()]), /^gapcam: image or folder not found: .*nope\.png$/);
  });

  it('cam: a corrupt image file', async () => {
    expectUserError(await runMain(['cam', model, corrupt, '--out', out()]), /^gapcam: cannot decode image .*broken\.jpg: .*expected a readable JPEG/);
  });

  it('cam: a bad --opacity value', async () => {
    expectUserError(await runMain(['cam', model, images, '--opacity', '2', '--out', out()]), /^gapcam: --opacity: expected a number in \[0, 1\], found 2$/);
  });

  it('features: a folder that is not a checkpoint', async () => {
    expectUserError(await runMain(['features', images, '--dataset', images, '--out', out()]), /^gapcam: model '.*images': not a model folder/);
  });

  it('svm: a missing feature folder', async () => {
    expectUserError(await runMain(['svm', '--train', missing()]), /no-such-thing/);
  });

  it('transfer: an unknown experiment', async () => {
    expectUserError(await runMain(['transfer', 'no-such-experiment']), /^gapcam: experiment 'no-such-experiment': no such file \(known in recipes\/: transfer-/);
  });

  it('datasets: checking a missing dataset', async () => {
    expectUserError(await runMain(['datasets', 'check', missing()]), /no-such-thing/);
  });

  it('model: an unknown backbone', async () => {
    expectUserError(await runMain(['model', 'summary', 'vgg17']), /^gapcam: model 'vgg17': .*backbone name \(vgg11, /);
  });

  it('model export --web: onto a model folder, or with --format / --quantize misplaced', async () => {
    expectUserError(await runMain(['model', 'export', model, '--web', '--out', model]), /^gapcam: --out .*: holds a meta\.json that gapcam model export --web did not write; choose another folder/);
    expectUserError(await runMain(['model', 'export', model, '--web', '--format', 'tfjs', '--out', path.join(tmp, 'page')]), /^gapcam: --web writes a web page; leave out --format/);
    expectUserError(await runMain(['model', 'export', model, '--format', 'tfjs', '--quantize', 'uint8', '--out', path.join(tmp, 'x')]), /^gapcam: --quantize: only with --web/);
  });

  it('recipes: a stray argument', async () => {
    expectUserError(await runMain(['recipes', 'extra']), /'gapcam recipes' takes no argument 'extra'/);
  });

  it('engine: an unknown --backend', async () => {
    expectUserError(await runMain(['engine', '--backend', 'gpu']), /--backend: expected one of auto, .*; got 'gpu'/);
  });

  it('demo: a bad --epochs value', async () => {
    expectUserError(await runMain(['demo', '--epochs', '0', '--checkpoints', out()]), /^gapcam: --epochs: .*> 0; got 0/);
  });

  it('--verbose adds the stack trace', async () => {
    const r = await runMain(['svm', '--train', missing(), '--verbose']);
    expect(r.code).to.equal(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).to.match(/^gapcam: .*no-such-thing/);
    expect(r.stderr).to.match(/\n\s+at /);
  });
});
