// The command line of sharding: the shard picked up from a scheduler's environment and named on the engine line,
// the flag winning, and `gapcam merge` refusing in one line with exit code 2.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { makeTempDir, useEngine } from '../helpers.js';
import { runMain, gapcamStderr } from '../engine/run-cli.js';
import { saveCamModel } from '../../src/models/meta.js';
import { buildEmbeddedDataset, DEFAULT_EMBEDDED_PARAMS, DIGIT_CLASS_NAMES } from '../../src/data/embedded.js';
import { tinyGapDense } from '../cam/tiny-models.js';

describe('shard: command line', function () {
  let root: string;
  let base: string[];

  before(async () => {
    await useEngine();
    root = makeTempDir();
    await buildEmbeddedDataset(path.join(root, 'data'), { ...DEFAULT_EMBEDDED_PARAMS, trainPerClass: 1, testPerClass: 1 });
    const cam = tinyGapDense({ size: 32, classes: 10, seed: 3 });
    cam.meta.classNames = DIGIT_CLASS_NAMES.slice();
    await saveCamModel(path.join(root, 'model'), cam);
    cam.model.dispose();
    base = ['features', path.join(root, 'model'), '--dataset', path.join(root, 'data', 'digits-loc'), '--out', path.join(root, 'feat')];
  });

  it('takes the shard from a Kubernetes Indexed Job or a Slurm array, says so on the engine line; the flag wins', async () => {
    const k8s = await runMain(base, { JOB_COMPLETION_INDEX: '1', GAPCAM_SHARD_COUNT: '2' });
    expect(k8s.code, k8s.stderr).to.equal(0);
    expect(gapcamStderr(k8s.stderr)[0]).to.match(/^engine .* — shard 1 of 2 \(0-based, from JOB_COMPLETION_INDEX\)$/);
    expect(k8s.stdout).to.match(/^shard 1 of 2: wrote /);
    const slurm = await runMain([...base, '--shard', '0/2'], { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '2' });
    expect(slurm.code, slurm.stderr).to.equal(0);
    expect(gapcamStderr(slurm.stderr)[0]).to.match(/ — shard 0 of 2 \(0-based, from --shard\)$/);
    expect(fs.readdirSync(path.join(root, 'feat')).sort()).to.deep.equal(['shard-0-of-2', 'shard-1-of-2']);
    const merged = await runMain(['merge', path.join(root, 'feat')]);
    expect(merged.code, merged.stderr).to.equal(0);
    expect(merged.stdout).to.match(/^merged 2 features parts \(20 images\) into /);
    expect(fs.existsSync(path.join(root, 'feat', 'features.npy'))).to.equal(true);
  });

  it('refuses a bad scheduler env and a missing shard in one line, exit 2, before any work', async () => {
    const bad = await runMain(base, { JOB_COMPLETION_INDEX: '0' });
    expect(bad.code).to.equal(2);
    expect(gapcamStderr(bad.stderr)).to.deep.equal(['gapcam: JOB_COMPLETION_INDEX=0 (a Kubernetes Indexed Job) gives the shard index but not the count: set GAPCAM_SHARD_COUNT to the Job\'s completions, or pass --shard-count (or --shard off)']);
    fs.rmSync(path.join(root, 'feat', 'shard-0-of-2'), { recursive: true });
    const missing = await runMain(['merge', path.join(root, 'feat')]);
    expect(missing.code).to.equal(2);
    expect(gapcamStderr(missing.stderr)).to.deep.equal(['gapcam: merge: shard 0 of 2 is missing (have 1 of 2 parts); run it first']);
  });
});
