import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from '../helpers.js';
import { loadRecipe, listRecipes, applyOverrides, parseRecipe, summarizeRecipe } from '../../src/recipes/loader.js';
import { projectRoot } from '../../src/paths.js';
import { UserError } from '../../src/errors.js';

function writeRecipe(dir: string, name: string, body: unknown): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
  return file;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(UserError);
    const m = (e as Error).message;
    expect(m.split('\n'), m).to.have.length(1);
    return m;
  }
  throw new Error('expected a UserError');
}

describe('recipes', () => {
  it('ships vgg-gap, vgg19-gap, vgg-gap-tiny and darknet-gap, all valid', () => {
    const all = listRecipes();
    const names = all.map((r) => r.name);
    for (const n of ['vgg-gap', 'vgg19-gap', 'vgg-gap-tiny', 'darknet-gap']) expect(names).to.include(n);
    for (const r of all) expect(r.error, r.name).to.equal(undefined);
    for (const n of ['vgg-gap', 'vgg19-gap', 'vgg-gap-tiny', 'darknet-gap']) expect(all.find((r) => r.name === n)!.kind).to.equal('train');
    const vgg = loadRecipe('vgg-gap');
    expect(vgg.model).to.deep.include({ backbone: 'vgg16', weights: 'imagenet', cutAt: 'block5_conv3' });
    expect(vgg.model.head).to.deep.include({ convFilters: 1024, kernelSize: 3 });
    expect(vgg.data).to.deep.include({ dataset: 'cub200', inputSize: 224, preprocessing: 'caffe' });
    expect(vgg.optimizer.type).to.equal('sgd');
    expect(vgg.optimizer.momentum).to.equal(0.9);
    expect(vgg.headLrMultiplier).to.equal(10);
    const dk = loadRecipe('darknet-gap');
    expect(dk.model.weights).to.equal(path.resolve(projectRoot, '..', 'shared', 'models', 'darknet-tiny'));
    expect(dk.data.dataset).to.equal('wild2');
    expect(loadRecipe('vgg-gap-tiny').data.dataset).to.equal('digits-loc');
    expect(summarizeRecipe(vgg)).to.contain('vgg16').and.to.contain('1024');
  });

  it('fills defaults for everything but the backbone', () => {
    const r = parseRecipe({ model: { backbone: 'vgg16' } }, 'x.json');
    expect(r.optimizer).to.deep.equal({ type: 'sgd', momentum: 0.9, nesterov: false, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 });
    expect(r.model.head).to.deep.equal({ convFilters: 1024, kernelSize: 3, dropout: 0, classifierInit: 'default' });
    expect(r.model.init).to.equal('default');
    expect(r.freeze).to.deep.equal({ layers: [], epochs: null });
    expect(r.schedule.type).to.equal('constant');
    expect(r.data.trainTransforms).to.deep.equal([{ op: 'resize', mode: 'exact' }, { op: 'flip', p: 0.5 }]);
  });

  it('refuses an unknown key or a wrong type with one line naming the key and the file', () => {
    const dir = makeTempDir();
    const f1 = writeRecipe(dir, 'a', { model: { backbone: 'vgg16', cutat: 'block5_conv3' } });
    expect(errorOf(() => loadRecipe(f1))).to.equal(`recipe ${f1}: unknown key 'model.cutat'`);
    const f2 = writeRecipe(dir, 'b', { model: { backbone: 'vgg16' }, lr: '0.1' });
    expect(errorOf(() => loadRecipe(f2))).to.equal(`recipe ${f2}: key 'lr' should be a number; got "0.1" (string)`);
    const f3 = writeRecipe(dir, 'c', { model: { backbone: 'vgg16' }, data: { inputSize: [224] } });
    expect(errorOf(() => loadRecipe(f3))).to.contain(f3).and.to.contain("key 'data.inputSize'").and.to.contain('[height, width]');
    const f4 = writeRecipe(dir, 'd', { model: { backbone: 'vgg16' }, optimizer: { type: 'rmsprop' } });
    expect(errorOf(() => loadRecipe(f4))).to.contain("key 'optimizer.type' should be one of").and.to.contain('"rmsprop"');
    const f5 = writeRecipe(dir, 'e', { model: {} });
    expect(errorOf(() => loadRecipe(f5))).to.contain("missing key 'model.backbone'");
    const f6 = writeRecipe(dir, 'f', '{ "model": ');
    expect(errorOf(() => loadRecipe(f6))).to.contain(`recipe ${f6}: not valid JSON`);
    const f7 = writeRecipe(dir, 'g', { model: { backbone: 'vgg16' }, data: { trainTransforms: [{ op: 'rotate' }] } });
    expect(errorOf(() => loadRecipe(f7))).to.contain("key 'data.trainTransforms[0].op'");
    const f8 = writeRecipe(dir, 'h', { kind: 'transfer', sources: [] });
    expect(errorOf(() => loadRecipe(f8))).to.contain("is a 'transfer' recipe, not a training recipe");
    expect(errorOf(() => loadRecipe('no-such-recipe'))).to.contain("unknown recipe 'no-such-recipe'").and.to.contain('vgg-gap');
  });

  it('precedence: defaults < file < flags; unset flags change nothing; bad flags are named', () => {
    const dir = makeTempDir();
    const f = writeRecipe(dir, 'p', { model: { backbone: 'vgg16' }, epochs: 7, lr: 0.5 });
    const file = loadRecipe(f);
    expect(file.epochs).to.equal(7);
    expect(file.batchSize).to.equal(32);
    expect(loadRecipe(f, { epochs: undefined, lr: undefined })).to.deep.equal(file);
    const over = loadRecipe(f, { epochs: 2, batchSize: 4, inputSize: [96, 128], dataset: 'wild2', lr: 0.01, weights: 'none', seed: 9 });
    expect(over).to.deep.include({ epochs: 2, batchSize: 4, lr: 0.01, seed: 9 });
    expect(over.data.inputSize).to.deep.equal([96, 128]);
    expect(over.data.dataset).to.equal('wild2');
    expect(over.model.weights).to.equal('none');
    expect(over.name).to.equal('p');
    expect(errorOf(() => applyOverrides(file, { epochs: 0 }))).to.match(/^--epochs: key 'epochs' should be/);
    expect(errorOf(() => applyOverrides(file, { batchSize: 2.5 }))).to.match(/^--batch-size: /);
    // a weights path given on the command line is relative to the current folder
    expect(applyOverrides(file, { weights: 'w.h5' }).model.weights).to.equal(path.resolve('w.h5'));
  });
});
