// `train` with a model of one's own as the recipe's backbone: residual and depthwise-separable nets with BatchNorm
// (built in tfjs, saved as .h5 and as .keras) are cut at a named layer, get the GAP head, fine-tune with BN in
// training mode, and the trained checkpoint's CAM is exact: mean_xy M_c + b_c equals the classifier's logit.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { runTraining } from '../../src/train/run.js';
import { loadRecipe } from '../../src/recipes/loader.js';
import { loadCamModel } from '../../src/models/meta.js';
import { classActivationMaps } from '../../src/cam/class-maps.js';
import { UserError } from '../../src/errors.js';
import { SilentProgress } from '../../src/train/progress.js';
import { writeMiniCub } from './mini-cub.js';
import { residualNet, depthwiseNet, saveAs } from '../models/own-nets.js';

describe('train: a recipe whose backbone is a model file (.h5, .keras)', function () {
  this.timeout(120_000);
  before(useEngine);
  let work: string;
  let cub: string;
  before(async () => {
    work = makeTempDir();
    cub = await writeMiniCub(path.join(work, 'cub'), { classes: 2, perClass: 6, size: 32 });
  });

  function writeRecipe(name: string, backbone: string, extra: { data?: object; model?: object } = {}): string {
    const file = path.join(work, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify({
      model: { backbone, cutAt: 'features', head: { convFilters: 8 }, ...extra.model },
      data: { dataset: cub, inputSize: 32, preprocessing: 'tf', trainTransforms: [{ op: 'resize' }], ...extra.data },
      optimizer: { type: 'adam' }, lr: 1e-3, batchSize: 3, epochs: 1, seed: 3, evaluation: { split: 'none' },
    }));
    return file;
  }

  for (const [net, make] of [['residual', residualNet], ['depthwise', depthwiseNet]] as const) {
    for (const ext of ['.h5', '.keras']) {
      it(`${net} net${ext}: surgery at 'features', fine-tuning with BN in training mode, exact CAM`, async () => {
        const src = make();
        const file = path.join(work, `${net}${ext}`);
        await saveAs(src, file);
        const bnBefore = Array.from(src.getLayer('stem_bn').getWeights()[2].dataSync());
        const kernelBefore = Array.from(src.getLayer('stem_conv').getWeights()[0].dataSync());
        src.dispose();
        // a relative backbone path in a recipe is relative to the recipe's folder
        const recipe = writeRecipe(`${net}-${ext.slice(1)}`, path.basename(file));
        expect(loadRecipe(recipe).model.backbone).to.equal(file);
        const out = path.join(work, 'ck');
        const logs: string[] = [];
        const progress = Object.assign(new SilentProgress(), { log: (l: string) => logs.push(l) });
        const res = await runTraining({ recipe, checkpointRoot: out, runName: `${net}${ext}`, cacheDir: null, progress });
        // the generic step, and the log line says why
        expect(logs.find((l) => l.startsWith('training step:'))).to.match(/generic .*chain-shaped models only; layer '(res_add|features)' \((Add|Concatenate)\) has 2 inputs/);
        expect(res.status).to.equal('completed');
        expect(res.globalStep).to.equal(2); // 6 train images, batch 3
        const cam = await loadCamModel(path.join(res.runDir, 'last'));
        expect(cam.meta).to.deep.include({ preprocessing: 'tf', backbone: file, featureLayer: 'gap_conv', classifierLayer: 'gap_classifier' });
        // the kept layers were fine-tuned, BN moving statistics updated (training mode)
        expect(Array.from(cam.model.getLayer('stem_conv').getWeights()[0].dataSync())).to.not.deep.equal(kernelBefore);
        expect(Array.from(cam.model.getLayer('stem_bn').getWeights()[2].dataSync())).to.not.deep.equal(bnBefore);
        const saved = JSON.parse(fs.readFileSync(path.join(res.runDir, 'recipe.json'), 'utf8'));
        expect(saved.data.preprocessing).to.equal('tf');

        const x = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 11);
        const { logits, maps } = classActivationMaps(cam, x, [[0, 1], [0, 1]]);
        const classifier = cam.model.getLayer('gap_classifier');
        const logitModel = tf.model({ inputs: cam.model.inputs, outputs: classifier.output as tf.SymbolicTensor });
        const direct = logitModel.predict(x) as tf.Tensor2D;
        const bias = classifier.getWeights()[1].dataSync();
        const meanMaps = tf.mean(maps, [1, 2]).arraySync() as number[][];
        const d = direct.arraySync() as number[][];
        for (let i = 0; i < 2; i++) {
          for (let c = 0; c < 2; c++) expect(meanMaps[i][c] + bias[c], `image ${i} class ${c}`).to.be.closeTo(d[i][c], 1e-4 * Math.max(1, Math.abs(d[i][c])));
        }
        expect(maps.shape).to.deep.equal([2, 16, 16, 2]);
        tf.dispose([x, logits, maps, direct]);
        cam.model.dispose();
      });
    }
  }

  it('a model file at another input size is rebuilt for the recipe; reinitialize draws fresh weights; errors are one line', async () => {
    const src = residualNet();
    const file = path.join(work, 'resize.keras');
    await saveAs(src, file);
    const kernel = Array.from(src.getLayer('res_conv1').getWeights()[0].dataSync());
    src.dispose();
    const recipe = writeRecipe('resize', file, { data: { inputSize: 24, preprocessing: undefined }, model: { reinitialize: true } });
    const res = await runTraining({ recipe, checkpointRoot: path.join(work, 'ck'), runName: 'resize', cacheDir: null, maxSteps: 1 });
    const cam = await loadCamModel(path.join(res.runDir, 'last'));
    expect(cam.meta.inputSize).to.deep.equal([24, 24]);
    expect(cam.meta.preprocessing).to.equal('unit'); // not a known Keras application, no recipe value: assumed (warned)
    expect(Array.from(cam.model.getLayer('res_conv1').getWeights()[0].dataSync())).to.not.deep.equal(kernel);
    cam.model.dispose();

    const missing = writeRecipe('missing', 'nowhere/model.keras');
    let err: unknown;
    await runTraining({ recipe: missing, checkpointRoot: path.join(work, 'ck'), runName: 'missing', cacheDir: null }).catch((e) => (err = e));
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(/model\.backbone: .*nowhere\/model\.keras does not exist/);
    const badCut = writeRecipe('badcut', file, { model: { cutAt: 'no_such_layer' } });
    err = undefined;
    await runTraining({ recipe: badCut, checkpointRoot: path.join(work, 'ck'), runName: 'badcut', cacheDir: null }).catch((e) => (err = e));
    expect((err as Error).message).to.contain("has no layer 'no_such_layer'");
  });
});
