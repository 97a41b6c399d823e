// What a training run must never do to the user's run folder: two writers at once (the lock), a NaN model saved as
// best/ or last/, a best/ that last/ misreports, a checkpoint of another architecture resumed under the run's recipe,
// a run that can neither resume nor restart, leftovers of killed saves. In-process, on a miniature CUB tree.
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { useEngine, makeTempDir } from '../helpers.js';
import { runTraining } from '../../src/train/run.js';
import { loadLastCheckpoint, readBestOnDisk, readTrainState } from '../../src/train/checkpoint.js';
import { lockRun, RUN_LOCK, RUN_LOCK_TAKEOVER, type LockTakeoverHooks, type RunLock } from '../../src/train/run-lock.js';
import { TrainingDivergedError, firstNonFiniteWeight } from '../../src/train/trainer.js';
import { loadCamModel } from '../../src/models/meta.js';
import { UserError } from '../../src/errors.js';
import type { Progress } from '../../src/train/progress.js';
import { SilentProgress } from '../../src/train/progress.js';
import { writeMiniCub } from './mini-cub.js';

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** A Progress that keeps the logged lines. */
function loggingProgress(): Progress & { lines: string[] } {
  const p = new SilentProgress() as SilentProgress & { lines: string[] };
  p.lines = [];
  p.log = (line: string) => void p.lines.push(line);
  return p;
}

describe('train: safety of the run folder', function () {
  this.timeout(120_000);
  before(useEngine);
  let work: string;
  let cub: string;
  const recipe = (name: string, over: Record<string, unknown> = {}, model: Record<string, unknown> = {}) => {
    const file = path.join(work, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify({
      model: { backbone: 'vgg-tiny', weights: 'none', head: { convFilters: 8 }, ...model },
      data: { dataset: cub, inputSize: 16, preprocessing: 'torch', valSplit: 'val' },
      optimizer: { type: 'sgd', momentum: 0.9 }, lr: 0.01, batchSize: 4, epochs: 1, seed: 2, evaluation: { split: 'none' },
      ...over,
    }));
    return file;
  };
  before(async () => {
    work = makeTempDir();
    cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 8, size: 16 });
  });

  describe('one writer per run', () => {
    it('refuses a second train on the same run folder with one line, and releases the lock at the end', async () => {
      const out = path.join(work, 'lock');
      const first = runTraining({ recipe: recipe('r'), overrides: { epochs: 3 }, checkpointRoot: out, runName: 'x', cacheDir: null });
      const lockFile = path.join(out, 'x', RUN_LOCK);
      while (!fs.existsSync(lockFile)) await new Promise((r) => setTimeout(r, 5));
      const err = await rejection(runTraining({ recipe: recipe('r'), checkpointRoot: out, runName: 'x', cacheDir: null }));
      expect(err).to.be.instanceOf(UserError);
      expect(err.message).to.match(new RegExp(`^run folder .*x is in use by gapcam pid ${process.pid} on ${os.hostname()} \\(since .*\\): one training process per run`));
      expect(err.message).to.not.contain('\n');
      const res = await first;
      expect(res.status).to.equal('completed');
      const spe = res.globalStep / 3;
      expect(res.lastEpoch?.epoch).to.equal(3); // the refused one wrote nothing: metrics, recipe and checkpoints are the first's
      expect(fs.existsSync(lockFile)).to.equal(false);
      const resumed = await runTraining({ resume: 'x', overrides: { epochs: 4 }, checkpointRoot: out, cacheDir: null });
      expect(resumed.globalStep).to.equal(4 * spe);
    });

    it('takes over the lock of a dead process on this host; refuses one from another host', () => {
      const dir = path.join(work, 'stale');
      fs.mkdirSync(dir, { recursive: true });
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
      fs.writeFileSync(path.join(dir, RUN_LOCK), JSON.stringify({ pid: Number(dead), host: os.hostname(), startedAt: 'then' }));
      const lock = lockRun(dir);
      expect(JSON.parse(fs.readFileSync(lock.file, 'utf8')).pid).to.equal(process.pid);
      lock.release();
      expect(fs.existsSync(lock.file)).to.equal(false);
      fs.writeFileSync(path.join(dir, RUN_LOCK), JSON.stringify({ pid: Number(dead), host: 'elsewhere', startedAt: 'then' }));
      expect(() => lockRun(dir)).to.throw(UserError, /in use by gapcam pid \d+ on elsewhere .*remove .*\.lock\)$/);
    });
  });

  describe('taking over a stale lock is atomic', () => {
    const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
    const staleLockIn = (name: string) => {
      const dir = path.join(work, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, RUN_LOCK), JSON.stringify({ pid: deadPid(), host: os.hostname(), startedAt: 'then' }));
      return dir;
    };
    /** Two takers of one stale lock, the second run to its end at `at` inside the first: who won, who was refused. */
    const race = (dir: string, at: keyof LockTakeoverHooks) => {
      const won: string[] = [];
      const refused: string[] = [];
      let second: RunLock | undefined;
      const attempt = (who: string, hooks: LockTakeoverHooks) => {
        try {
          const lock = lockRun(dir, hooks);
          won.push(who);
          return lock;
        } catch (err) {
          expect(err).to.be.instanceOf(UserError);
          expect((err as Error).message).to.not.contain('\n');
          refused.push(`${who}: ${(err as Error).message}`);
          return undefined;
        }
      };
      const first = attempt('first', { [at]: () => { second = attempt('second', {}); } });
      const lockText = fs.readFileSync(path.join(dir, RUN_LOCK), 'utf8');
      for (const l of [first, second]) l?.release();
      return { won, refused, lockText };
    };

    it('a second taker arriving between the stale check and the takeover finds the lock live: exactly one wins', () => {
      const dir = staleLockIn('race1');
      const { won, refused, lockText } = race(dir, 'judgedStale');
      expect(won).to.deep.equal(['second']);
      expect(refused).to.have.length(1);
      expect(refused[0]).to.match(new RegExp(`^first: run folder .*race1 is in use by gapcam pid ${process.pid} on `));
      expect(JSON.parse(lockText).pid).to.equal(process.pid); // the winner's lock was not removed by the loser
      expect(fs.readdirSync(dir)).to.deep.equal([]); // released: no lock, no takeover file, no temporary
    });

    it('a second taker arriving while the first holds the takeover is refused: exactly one wins', () => {
      const dir = staleLockIn('race2');
      const { won, refused } = race(dir, 'holdingTakeover');
      expect(won).to.deep.equal(['first']);
      expect(refused).to.have.length(1);
      expect(refused[0]).to.match(/^second: run folder .*race2 is being taken over by another gapcam process .*: one training process per run$/);
      expect(fs.readdirSync(dir)).to.deep.equal([]);
    });

    it('a takeover file left by a process killed during its takeover is cleared once it is old', () => {
      const dir = staleLockIn('race3');
      const guard = path.join(dir, RUN_LOCK_TAKEOVER);
      fs.writeFileSync(guard, '');
      expect(() => lockRun(dir)).to.throw(UserError, /is being taken over by another gapcam process/);
      const old = new Date(Date.now() - 60_000);
      fs.utimesSync(guard, old, old);
      const lock = lockRun(dir);
      expect(JSON.parse(fs.readFileSync(lock.file, 'utf8')).pid).to.equal(process.pid);
      expect(fs.existsSync(guard)).to.equal(false);
      lock.release();
    });
  });

  describe('divergence', () => {
    it('--lr 1e9 (Adam): stops in epoch 1 with one line, exit-2 error, saving no best/ or last/ (there is none yet)', async () => {
      const out = path.join(work, 'nan');
      const file = recipe('bn', { optimizer: { type: 'adam' }, lr: 1e9, epochs: 3 }, { backbone: 'vgg-tiny-bn' });
      const err = await rejection(runTraining({ recipe: file, checkpointRoot: out, runName: 'n', cacheDir: null }));
      expect(err).to.be.instanceOf(TrainingDivergedError);
      expect((err as UserError).exitCode).to.equal(2);
      expect(err.message).to.match(/^training diverged: .* at step \d+ \(epoch 1\) with learning rate 1\.000e\+9; stopped without saving it, no checkpoint was saved yet \(it diverged in epoch 1\)/);
      expect(fs.readdirSync(path.join(out, 'n')).filter((f) => /best|last/.test(f))).to.deep.equal([]);
      // the run has no checkpoint: --resume says how to restart, and a restart under the same name works
      const again = await rejection(runTraining({ resume: 'n', checkpointRoot: out, cacheDir: null }));
      expect(again.message).to.match(/^--resume: run n has no checkpoint yet .*start it again with: gapcam train .*recipe\.json --run-name n --checkpoints /);
      fs.mkdirSync(path.join(out, 'n', '.last.tmp-4242-1700000000000')); // a killed save's leftover…
      fs.writeFileSync(path.join(out, 'n', '.last.tmp-notes'), 'mine'); // …and a file of the user's that looks close
      const progress = loggingProgress();
      const res = await runTraining({ recipe: recipe('bn-ok', { optimizer: { type: 'adam' }, lr: 1e-3 }, { backbone: 'vgg-tiny-bn' }),
        checkpointRoot: out, runName: 'n', cacheDir: null, progress });
      expect(res.status).to.equal('completed');
      expect(progress.lines.join('\n')).to.contain('run n has no checkpoint yet (it stopped before its first one): starting it again');
      expect(fs.readdirSync(path.join(out, 'n')).filter((f) => f.startsWith('.')).sort()).to.deep.equal(['.last.tmp-notes']);
    });

    it('diverging in a later epoch names the last good checkpoint, which stays finite, as best/ does', async () => {
      const out = path.join(work, 'nan2');
      const file = recipe('bn2', { optimizer: { type: 'adam' }, lr: 1e-3 }, { backbone: 'vgg-tiny-bn' });
      const first = await runTraining({ recipe: file, checkpointRoot: out, runName: 'm', cacheDir: null });
      const err = await rejection(runTraining({ resume: 'm', overrides: { lr: 1e9, epochs: 3 }, checkpointRoot: out, cacheDir: null }));
      expect(err).to.be.instanceOf(TrainingDivergedError);
      expect(err.message).to.match(new RegExp(`\\(epoch 2\\) with learning rate 1\\.000e\\+9; stopped without saving it, the last good checkpoint is ${path.join(out, 'm', 'last')} \\(step ${first.globalStep}, 1 epoch done\\)`));
      for (const d of ['last', 'best']) {
        const cam = await loadCamModel(path.join(out, 'm', d));
        expect(await firstNonFiniteWeight(cam.model), d).to.equal(undefined);
        cam.model.dispose();
        expect(readTrainState(path.join(out, 'm', d)).state.epoch, d).to.equal(1);
      }
    });
  });

  describe('best/ and last/ agree', () => {
    it('a resume takes best/ as it is on disk when last/ recorded another best (a save cut short)', async () => {
      const out = path.join(work, 'best');
      await runTraining({ recipe: recipe('b'), checkpointRoot: out, runName: 'b', cacheDir: null });
      const stateFile = path.join(out, 'b', 'last', 'train-state.json');
      const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
      const onDisk = readBestOnDisk(path.join(out, 'b'))!.best;
      expect(state.best).to.deep.equal(onDisk);
      // what the old save order left after a kill between last/ and best/: last/ names a best that is not on disk
      fs.writeFileSync(stateFile, JSON.stringify({ ...state, best: { metric: 2, epoch: 1, valAcc: 2 } }));
      const progress = loggingProgress();
      const res = await runTraining({ resume: 'b', overrides: { epochs: 2 }, checkpointRoot: out, cacheDir: null, progress });
      expect(progress.lines.join('\n')).to.contain('best checkpoint: best/ holds epoch 1, last/ recorded epoch 1 (a save was cut short): going on from best/ as it is');
      const after = readBestOnDisk(path.join(out, 'b'))!.best;
      expect(res.best).to.deep.equal(after);
      expect(readTrainState(path.join(out, 'b', 'last')).state.best).to.deep.equal(after);
      expect(after.valAcc).to.be.at.most(1);
    });
  });

  describe('a restart never removes best/', () => {
    /** Every file under `dir` with its bytes, by relative path. */
    const snapshot = (dir: string) => Object.fromEntries((fs.readdirSync(dir, { recursive: true }) as string[]).sort()
      .filter((f) => fs.statSync(path.join(dir, f)).isFile()).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));

    it('a run with best/ (or best.old/) but no last/ is refused with one line, exit 2, and best/ stays byte-identical', async () => {
      const out = path.join(work, 'restart');
      const runDir = path.join(out, 'r');
      const file = recipe('restart');
      await runTraining({ recipe: file, checkpointRoot: out, runName: 'r', cacheDir: null });
      // what a kill between the first epoch's best/ save and its last/ save leaves
      fs.rmSync(path.join(runDir, 'last'), { recursive: true });
      const bestDir = path.join(runDir, 'best');
      const before = snapshot(bestDir);
      expect(Object.keys(before)).to.include.members(['model.json', 'meta.json', 'train-state.json']);
      for (const name of ['best', 'best.old']) {
        if (name === 'best.old') fs.renameSync(bestDir, path.join(runDir, 'best.old')); // a kill inside best/'s own swap
        const dir = path.join(runDir, name);
        const err = await rejection(runTraining({ recipe: file, checkpointRoot: out, runName: 'r', cacheDir: null }));
        expect(err).to.be.instanceOf(UserError);
        expect((err as UserError).exitCode).to.equal(2);
        expect(err.message).to.equal(`run folder ${runDir} holds the model ${dir} (epoch 1) but no last/ checkpoint (it stopped between the two ` +
          `saves of its first epoch), and a restart would replace it: start a new run with another --run-name, or move ${dir} out of the run folder to start r again`);
        const resume = await rejection(runTraining({ resume: 'r', checkpointRoot: out, cacheDir: null }));
        expect(resume.message).to.match(new RegExp(`^--resume: run r has no last/ checkpoint to continue from, only the model ${dir} \\(epoch 1\\) .*use it as a model`));
        expect(resume.message).to.not.contain('\n');
        expect(snapshot(dir), name).to.deep.equal(before);
        expect(fs.existsSync(path.join(runDir, RUN_LOCK)), 'the refused run released its lock').to.equal(false);
      }
      // moved out of the run folder by the user, the run starts again under its name
      fs.renameSync(path.join(runDir, 'best.old'), path.join(out, 'kept-best'));
      const res = await runTraining({ recipe: file, checkpointRoot: out, runName: 'r', cacheDir: null });
      expect(res.status).to.equal('completed');
      expect(snapshot(path.join(out, 'kept-best'))).to.deep.equal(before);
    });
  });

  describe('--resume checks the checkpoint against the run', () => {
    it('refuses a recipe on the command line that differs from the run\'s, accepts the same one', async () => {
      const out = path.join(work, 'rec');
      const file = recipe('same');
      const first = await runTraining({ recipe: file, checkpointRoot: out, runName: 's', cacheDir: null });
      const err = await rejection(runTraining({ resume: 's', recipe: recipe('other', { lr: 0.5 }), checkpointRoot: out, cacheDir: null }));
      expect(err).to.be.instanceOf(UserError);
      expect(err.message).to.equal(`--resume s: recipe '${path.join(work, 'other.json')}' differs from the run's own (lr: 0.5 vs 0.01); ` +
        'drop the recipe argument to continue with the run\'s, or start a new run');
      const ok = await runTraining({ resume: 's', recipe: file, overrides: { epochs: 2 }, checkpointRoot: out, cacheDir: null });
      expect(ok.globalStep).to.equal(2 * first.globalStep);
    });

    it('refuses a last/ of another backbone or head inside the run', async () => {
      const out = path.join(work, 'arch');
      await runTraining({ recipe: recipe('a'), checkpointRoot: out, runName: 'a', maxSteps: 1, cacheDir: null });
      await runTraining({ recipe: recipe('bnb', {}, { backbone: 'vgg-tiny-bn' }), checkpointRoot: out, runName: 'bn', maxSteps: 1, cacheDir: null });
      await runTraining({ recipe: recipe('wide', {}, { head: { convFilters: 16 } }), checkpointRoot: out, runName: 'w', maxSteps: 1, cacheDir: null });
      const swap = (from: string) => {
        fs.rmSync(path.join(out, 'a', 'last'), { recursive: true });
        fs.cpSync(path.join(out, from, 'last'), path.join(out, 'a', 'last'), { recursive: true });
      };
      swap('bn');
      let err = await rejection(runTraining({ resume: 'a', checkpointRoot: out, cacheDir: null }));
      expect(err.message).to.equal(`--resume: ${path.join(out, 'a', 'last')} does not match the run's recipe: the backbone should be "vgg-tiny", the checkpoint has "vgg-tiny-bn"`);
      swap('w');
      err = await rejection(runTraining({ resume: 'a', checkpointRoot: out, cacheDir: null }));
      expect(err.message).to.equal(`--resume: ${path.join(out, 'a', 'last')} does not match the run's recipe: head.convFilters should be 8, the checkpoint has 16`);
      const ck = await loadLastCheckpoint(path.join(out, 'a'));
      expect(ck.state.globalStep).to.equal(1);
      ck.cam.model.dispose();
    });
  });
});
