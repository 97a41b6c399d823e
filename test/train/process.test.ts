// The CLI in a child process: Ctrl-C (SIGINT → checkpoint, exit 130; twice → exits at once), SIGTERM (→ checkpoint,
// exit 143), SIGKILL during a checkpoint save (the last good checkpoint survives and --resume goes on), kill -9 at
// each checkpoint-writing moment (best/ and last/ agree with each other and with the summary), and vgg-gap's first
// steps on a miniature CUB tree (random weights: ImageNet weights cannot be downloaded here).
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { projectRoot } from '../../src/paths.js';
import { loadLastCheckpoint, readBestOnDisk, readTrainState } from '../../src/train/checkpoint.js';
import { resolveAtomicDir } from '../../src/util/atomic.js';
import { RUN_LOCK } from '../../src/train/run-lock.js';
import { readMetrics } from '../../src/train/metrics.js';
import { writeMiniCub } from './mini-cub.js';

interface Child {
  proc: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

function gapcam(args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'cli.ts'), ...args], {
    cwd: projectRoot, env: { ...process.env, GAPCAM_BACKEND: 'tensorflow', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '', stderr = '';
  proc.stdout!.on('data', (d) => (stdout += d));
  proc.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { proc, done };
}

async function waitFor(cond: () => boolean, ms: number, every = 20): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, every));
  }
}

function stepsWritten(runDir: string): number {
  return readMetrics(runDir).filter((r) => r.kind === 'step').length;
}

function writeRecipe(dir: string, over: object = {}): string {
  const file = path.join(dir, 'mini.json');
  fs.writeFileSync(file, JSON.stringify({
    description: 'test recipe: vgg-tiny from scratch at 16x16',
    model: { backbone: 'vgg-tiny', weights: 'none', head: { convFilters: 16 } },
    data: { dataset: 'unused', inputSize: 16, preprocessing: 'unit', trainTransforms: [{ op: 'resize' }, { op: 'flip' }], valSplit: 'val' },
    optimizer: { type: 'sgd', momentum: 0.9 },
    lr: 0.01,
    batchSize: 2,
    epochs: 200,
    evaluation: { split: 'none' },
    ...over,
  }));
  return file;
}

describe('train: the CLI under signals', function () {
  // Waits, not timing assertions: on a loaded 2-core machine a child takes up to a minute to load TensorFlow.
  this.timeout(480_000);
  before(useEngine);
  let cub: string;
  let work: string;
  before(async () => {
    work = makeTempDir();
    cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 8, size: 16 });
  });

  it('Ctrl-C finishes the step, writes last and exits 130; --resume continues from it', async () => {
    const out = path.join(work, 'ck-int');
    const recipe = writeRecipe(work);
    const runDir = path.join(out, 'r');
    const child = gapcam(['train', recipe, '--dataset', cub, '--checkpoints', out, '--run-name', 'r', '--no-cache']);
    await waitFor(() => fs.existsSync(path.join(runDir, 'metrics.jsonl')) && stepsWritten(runDir) >= 3, 240_000);
    child.proc.kill('SIGINT');
    const res = await child.done;
    expect(res.code, res.stderr).to.equal(130);
    expect(res.stdout).to.contain('resume with: gapcam train --resume r');
    const ck = await loadLastCheckpoint(runDir);
    expect(ck.state.globalStep).to.be.at.least(3);
    expect(ck.state.globalStep).to.equal(stepsWritten(runDir));
    ck.cam.model.dispose();
    // resume with fewer epochs than the recipe: finishes the current epoch's remainder and stops
    const target = ck.state.epoch + 1;
    const res2 = await gapcam(['train', '--resume', 'r', '--checkpoints', out, '--dataset', cub, '--epochs', String(target), '--no-cache']).done;
    expect(res2.code, res2.stderr).to.equal(0);
    const after = await loadLastCheckpoint(runDir);
    expect(after.state.epoch).to.equal(target);
    expect(after.state.globalStep).to.equal(target * 3); // 8 train images − 2 carved for validation, batch 2
    after.cam.model.dispose();
  });

  it('SIGTERM (Kubernetes, Slurm) stops as Ctrl-C does: the step finishes, last/ is written, exit 143', async () => {
    const out = path.join(work, 'ck-term');
    const runDir = path.join(out, 't');
    const child = gapcam(['train', writeRecipe(work), '--dataset', cub, '--checkpoints', out, '--run-name', 't', '--no-cache']);
    await waitFor(() => fs.existsSync(path.join(runDir, 'metrics.jsonl')) && stepsWritten(runDir) >= 2, 240_000);
    child.proc.kill('SIGTERM');
    const res = await child.done;
    expect(res.code, res.stderr).to.equal(143);
    expect(res.stderr).to.contain('SIGTERM: finishing the current step and writing a checkpoint');
    expect(res.stdout).to.contain('resume with: gapcam train --resume t');
    const ck = await loadLastCheckpoint(runDir);
    expect(ck.state.globalStep).to.equal(stepsWritten(runDir));
    ck.cam.model.dispose();
    expect(fs.existsSync(path.join(runDir, RUN_LOCK))).to.equal(false);
  });

  it('a second Ctrl-C exits at once', async () => {
    const out = path.join(work, 'ck-int2');
    const runDir = path.join(out, 'r');
    const child = gapcam(['train', writeRecipe(work), '--dataset', cub, '--checkpoints', out, '--run-name', 'r', '--no-cache']);
    await waitFor(() => fs.existsSync(path.join(runDir, 'metrics.jsonl')) && stepsWritten(runDir) >= 2, 240_000);
    child.proc.kill('SIGINT');
    child.proc.kill('SIGINT');
    const res = await child.done;
    expect(res.code === 130 || res.signal === 'SIGINT', `code ${res.code} signal ${res.signal}`).to.equal(true);
  });

  it('SIGKILL during a checkpoint save leaves the last good checkpoint, and --resume goes on', async () => {
    const out = path.join(work, 'ck-kill');
    const runDir = path.join(out, 'k');
    // one step per epoch (8 train images, batch 8), so `last` is rewritten after every step; a wide head makes saves slow
    const recipe = writeRecipe(work, { batchSize: 8, model: { backbone: 'vgg-tiny', weights: 'none', head: { convFilters: 512 } }, data: {
      dataset: 'unused', inputSize: 16, preprocessing: 'unit', valSplit: 'none' } });
    let midSave = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const args = attempt === 0 ? ['train', recipe, '--run-name', 'k'] : ['train', '--resume', 'k'];
      const before = attempt === 0 ? 0 : (await loadLastCheckpoint(runDir)).state.globalStep;
      const child = gapcam([...args, '--dataset', cub, '--checkpoints', out, '--no-cache']);
      // a first good checkpoint must exist; then wait until the save of a newer one is under way (a new temporary
      // folder appears) and kill -9
      if (attempt === 0) await waitFor(() => fs.existsSync(path.join(runDir, 'last', 'train-state.json')), 240_000);
      const stale = new Set(fs.readdirSync(runDir));
      await waitFor(() => fs.readdirSync(runDir).some((f) => f.startsWith('.last.tmp-') && !stale.has(f)), 240_000, 1);
      await new Promise((r) => setTimeout(r, attempt * 7));
      child.proc.kill('SIGKILL');
      const res = await child.done;
      expect(res.signal).to.equal('SIGKILL');
      if (fs.readdirSync(runDir).some((f) => f.startsWith('.last.tmp-') || f === 'last.old')) midSave++;
      const ck = await loadLastCheckpoint(runDir);
      expect(ck.state.globalStep).to.be.at.least(before);
      ck.cam.model.dispose();
    }
    expect(midSave, 'kills that landed during a save').to.be.greaterThan(0);
    const ck = await loadLastCheckpoint(runDir);
    const res = await gapcam(['train', '--resume', 'k', '--dataset', cub, '--checkpoints', out, '--epochs', String(ck.state.epoch + 2), '--no-cache']).done;
    expect(res.code, res.stderr).to.equal(0);
    const after = await loadLastCheckpoint(runDir);
    expect(after.state.epoch).to.equal(ck.state.epoch + 2);
    expect(after.state.globalStep).to.equal(ck.state.globalStep + 2);
    expect(fs.readdirSync(runDir).filter((f) => f.includes('.tmp-') || f.endsWith('.old'))).to.deep.equal([]);
    ck.cam.model.dispose();
    after.cam.model.dispose();
  });

  it('kill -9 at each checkpoint-writing moment: best/ and last/ stay consistent, --resume (or a restart) goes on, the summary names best/', async function () {
    this.timeout(600_000); // five processes; minutes only on a loaded machine
    const out = path.join(work, 'ck-crash');
    const runDir = path.join(out, 'c');
    // one full-batch plain-SGD step per epoch, no augmentation, no validation split: the training loss (the
    // selection metric) falls every epoch, so every epoch writes best/ and then last/
    const recipe = writeRecipe(work, { batchSize: 8, optimizer: { type: 'sgd', momentum: 0 }, lr: 0.01, data: {
      dataset: 'unused', inputSize: 16, preprocessing: 'unit', trainTransforms: [{ op: 'resize' }], valSplit: 'none' } });
    const dirState = (d: string | undefined) => (d ? readTrainState(d).state : undefined);
    const checkConsistent = (when: string) => {
      const last = dirState(resolveAtomicDir(path.join(runDir, 'last')));
      const bestDir = resolveAtomicDir(path.join(runDir, 'best'));
      const best = dirState(bestDir);
      if (best) expect(best.best?.epoch, `${when}: best/ records itself`).to.equal(best.epoch);
      if (last?.best) {
        // last/ never names a best model that is not on disk (best/ may be one save ahead of last/'s record)
        expect(best, `${when}: last/ records best epoch ${last.best.epoch} but there is no best/`).to.not.equal(undefined);
        expect(best!.best!.epoch, `${when}: best/ is older than last/ says`).to.be.at.least(last.best.epoch);
        if (best!.best!.epoch === last.best.epoch) expect(best!.best, when).to.deep.equal(last.best);
      }
      return last;
    };
    // (after `swapped` the new folder is in place and only a leftover `.old` differs from a clean finish)
    const points = ['dir:best:filled', 'dir:last:filled', 'dir:best:moved-aside', 'dir:last:moved-aside'];
    const seen: string[] = [];
    for (const point of points) {
      const last = resolveAtomicDir(path.join(runDir, 'last'));
      const bestAlone = !last && resolveAtomicDir(path.join(runDir, 'best'));
      if (bestAlone) {
        // best/ without last/ is a model: a restart refuses to replace it (one line, exit 2) and leaves it; the user
        // moves it out of the run folder and starts again
        const refused = await gapcam(['train', recipe, '--run-name', 'c', '--dataset', cub, '--checkpoints', out, '--no-cache']).done;
        expect(refused.code, refused.stderr).to.equal(2);
        const line = refused.stderr.trim().split('\n').pop()!; // (the native engine logs its start before)
        expect(line).to.match(/^gapcam: run folder .* holds the model .*best \(epoch 1\) but no last\/ checkpoint .*start c again$/);
        fs.renameSync(bestAlone, path.join(out, `kept-${point}`));
      }
      // a run without last/ (killed before its first) is started again under its name; otherwise resumed
      const args = last ? ['train', '--resume', 'c'] : ['train', recipe, '--run-name', 'c'];
      const res = await gapcam([...args, '--dataset', cub, '--checkpoints', out, '--no-cache'], { GAPCAM_TEST_CRASH_AT: point }).done;
      expect(res.signal, `${point}: ${res.stderr}`).to.equal('SIGKILL');
      const state = checkConsistent(point);
      seen.push(`${point}: last ${state ? `epoch ${state.epoch}, best ${state.best?.epoch}` : 'none'}, best/ ${readBestOnDisk(runDir)?.best.epoch ?? 'none'}`);
    }
    expect(seen, seen.join('; ')).to.deep.equal([
      'dir:best:filled: last none, best/ none', // killed before the first checkpoint: started again next
      'dir:last:filled: last none, best/ 1', // best/ written, last/ not yet: refused next, started again once moved out
      'dir:best:moved-aside: last epoch 1, best 1, best/ 1', // epoch 2's best/ save cut short: best.old is epoch 1
      'dir:last:moved-aside: last epoch 1, best 1, best/ 2', // epoch 2's best/ in place, last/ (.old) still at epoch 1
    ]);
    const ck = await loadLastCheckpoint(runDir);
    const target = ck.state.epoch + 2;
    ck.cam.model.dispose();
    const res = await gapcam(['train', '--resume', 'c', '--dataset', cub, '--checkpoints', out, '--epochs', String(target), '--no-cache']).done;
    expect(res.code, res.stderr).to.equal(0);
    const onDisk = readBestOnDisk(runDir)!;
    expect(onDisk.best.epoch).to.equal(target);
    expect(res.stdout).to.contain(`best checkpoint: ${path.join(runDir, 'best')} (epoch ${onDisk.best.epoch}, train loss ${(-onDisk.best.metric).toFixed(4)})`);
    expect(readTrainState(path.join(runDir, 'last')).state.best).to.deep.equal(onDisk.best);
    expect(fs.readdirSync(runDir).filter((f) => f.includes('.tmp-') || f.endsWith('.old') || f === RUN_LOCK)).to.deep.equal([]);
  });

  it('vgg-gap runs its first steps on a miniature CUB tree (--weights none: no ImageNet download here)', async () => {
    const out = path.join(work, 'ck-vgg');
    const res = await gapcam(['train', 'vgg-gap', '--dataset', cub, '--weights', 'none', '--input-size', '32', '--batch-size', '2', '--max-steps', '2',
      '--checkpoints', out, '--run-name', 'v', '--no-cache']).done;
    expect(res.code, res.stderr).to.equal(0);
    expect(res.stdout).to.contain('stopped after --max-steps 2');
    const ck = await loadLastCheckpoint(path.join(out, 'v'));
    expect(ck.state.globalStep).to.equal(2);
    expect(ck.cam.meta).to.deep.include({ featureLayer: 'gap_conv', backbone: 'vgg16', recipe: 'vgg-gap' });
    expect(ck.cam.model.getLayer('block5_conv3')).to.not.equal(undefined);
    expect(() => ck.cam.model.getLayer('block5_pool')).to.throw();
    const recipe = JSON.parse(fs.readFileSync(path.join(out, 'v', 'recipe.json'), 'utf8'));
    expect(recipe.model.weights).to.equal('none');
    expect(recipe.data.inputSize).to.deep.equal([32, 32]); // recipe.json records a size as [height, width]
    expect(recipe.headLrMultiplier).to.equal(10);
    ck.cam.model.dispose();
  });
});
