// `gapcam train` from the CLI on a .keras MobileNetV2 with random weights (Keras' own file when the Keras venv is
// there, else the same architecture built in tfjs with Keras' names and saved as .keras): the recipe names only the
// file; MobileNetV2's cut (out_relu) and preprocessing (tf) are found; --max-steps 2 stops with a checkpoint.
import { expect } from 'chai';
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir, kerasPython } from '../helpers.js';
import { projectRoot } from '../../src/paths.js';
import { saveKerasArchive } from '../../src/models/keras-archive.js';
import { mobileNetV2 } from '../models/own-nets.js';
import { writeMiniCub } from '../train/mini-cub.js';

describe('cli: train on a .keras MobileNetV2', function () {
  this.timeout(300_000);
  before(useEngine);

  it('train <recipe with "backbone": "mnv2.keras"> --max-steps 2 works, with tf preprocessing and the out_relu cut', async () => {
    const work = makeTempDir();
    const py = kerasPython();
    const file = path.join(work, 'mnv2.keras');
    if (py) {
      const script = 'import os, sys\nos.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"\nimport keras\n' +
        'keras.applications.MobileNetV2(alpha=0.35, input_shape=(64, 64, 3), weights=None, classes=3).save(sys.argv[1])';
      execFileSync(py, ['-c', script, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    } else {
      const m = mobileNetV2(0.35, 64, 3);
      await saveKerasArchive(m, file);
      m.dispose();
    }
    // 8 per class: 4 train, 1 of them held out for validation, so one epoch has more than 2 steps
    const cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 8, size: 32 });
    fs.writeFileSync(path.join(work, 'mnv2-gap.json'), JSON.stringify({
      model: { backbone: 'mnv2.keras', head: { convFilters: 16 } },
      data: { inputSize: 64, trainTransforms: [{ op: 'resize' }, { op: 'flip' }] },
      optimizer: { type: 'adam' }, lr: 1e-3, batchSize: 2, epochs: 5, evaluation: { split: 'none' },
    }));
    const out = path.join(work, 'ck');
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'cli.ts'), 'train', path.join(work, 'mnv2-gap.json'),
      '--dataset', cub, '--checkpoints', out, '--run-name', 'mnv2', '--max-steps', '2', '--no-cache'],
    { cwd: projectRoot, env: { ...process.env, GAPCAM_BACKEND: 'tensorflow' }, encoding: 'utf8', timeout: 280_000 });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('stopped after --max-steps 2');
    const recipe = JSON.parse(fs.readFileSync(path.join(out, 'mnv2', 'recipe.json'), 'utf8'));
    expect(recipe.data.preprocessing).to.equal('tf');
    expect(recipe.model.backbone).to.equal(file);
    const meta = JSON.parse(fs.readFileSync(path.join(out, 'mnv2', 'last', 'meta.json'), 'utf8'));
    expect(meta).to.deep.include({ preprocessing: 'tf', featureLayer: 'gap_conv', backbone: file, inputSize: [64, 64] });
    const model = JSON.parse(fs.readFileSync(path.join(out, 'mnv2', 'last', 'model.json'), 'utf8'));
    const names = (model.modelTopology.model_config ?? model.modelTopology).config.layers.map((l: { name: string }) => l.name);
    expect(names).to.include('out_relu');
    expect(names).to.not.include('predictions'); // Keras' top was cut at out_relu
  });
});
