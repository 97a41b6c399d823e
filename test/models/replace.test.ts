// Replacing a model in its folder (`model surgery|export --force` onto a previous model): at every moment of the save
// the folder loads as the previous model or as the new one, never a mix (the old model.json beside new shards, or a
// new model.json beside the old meta.json). In-process: a crash-point hook copies the folder at each step of the
// save, as a kill there would leave it, and each copy is loaded.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { loadCamModel, readMeta, readClassesTxt, saveCamModel, CLASSES_TXT, META_JSON } from '../../src/models/meta.js';
import { MODEL_JSON, saveLayersModelToDir } from '../../src/models/layers-io.js';
import { setCrashPointHook } from '../../src/util/crash-points.js';
import type { CamModel } from '../../src/models/types.js';
import { tinyGapDense } from '../cam/tiny-models.js';

/** The classifier's kernel, to tell two models apart by their weights. */
const fcKernel = (m: tf.LayersModel) => Array.from(m.getLayer('fc').getWeights()[0].dataSync());

/** Runs `save` with a copy of `dir` taken at every crash point it passes; returns the copies by point. */
async function copiesDuring(dir: string, work: string, save: () => Promise<void>): Promise<[string, string][]> {
  const copies: [string, string][] = [];
  setCrashPointHook((point) => {
    const copy = fs.mkdtempSync(path.join(work, 'copy-'));
    fs.cpSync(dir, copy, { recursive: true });
    copies.push([point, copy]);
  });
  try {
    await save();
  } finally {
    setCrashPointHook(undefined);
  }
  return copies;
}

describe('models: replacing a model folder is all or nothing', function () {
  this.timeout(60_000);
  before(useEngine);
  let work: string;
  let oldCam: CamModel;
  let newCam: CamModel;
  before(() => {
    work = makeTempDir();
    oldCam = tinyGapDense({ classes: 2, seed: 1 });
    oldCam.meta = { ...oldCam.meta, classNames: ['cat', 'dog'] };
    newCam = tinyGapDense({ classes: 3, channels: 7, seed: 4 }); // other shapes: the shard sizes differ too
    newCam.meta = { ...newCam.meta, classNames: ['p', 'q', 'r'] };
  });
  after(() => {
    oldCam.model.dispose();
    newCam.model.dispose();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('a crash at any step of a --force rerun leaves the old model (model.json, shards, meta) or the new one, whole', async () => {
    const dir = path.join(work, 'model');
    await saveCamModel(dir, oldCam);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine\n');
    const oldMetaBytes = fs.readFileSync(path.join(dir, META_JSON));
    const oldKernel = fcKernel(oldCam.model);
    const newKernel = fcKernel(newCam.model);
    const copies = await copiesDuring(dir, work, () => saveCamModel(dir, newCam));
    const seen: string[] = [];
    for (const [point, copy] of copies) {
      const cam = await loadCamModel(copy); // checks every shard's size against model.json, exactly
      const kernel = fcKernel(cam.model);
      const which = cam.meta.classNames.join(',') === 'cat,dog' ? 'old' : 'new';
      expect(kernel, `${point}: weights of the model its meta names`).to.deep.equal(which === 'old' ? oldKernel : newKernel);
      expect(readClassesTxt(copy), point).to.deep.equal(cam.meta.classNames);
      expect(cam.meta.headKind).to.equal('gap-dense');
      cam.model.dispose();
      seen.push(`${point.replace(/-r\d+\.bin/, '.bin')}: ${which}`);
      if (point === `model:${MODEL_JSON}:renamed`) {
        // the moment that matters: the new model.json beside the previous model's meta.json, read as the new one
        expect(fs.readFileSync(path.join(copy, META_JSON)).equals(oldMetaBytes)).to.equal(true);
      }
    }
    expect(seen).to.deep.equal([
      'model:group1-shard1of1.bin:renamed: old', // the new shard is in, under a name the old model.json does not list
      'model:model.json:renamed: new',
      'model:meta.json:renamed: new',
      'model:classes.txt:renamed: new',
      'model:companions-removed: new',
    ]);
    // afterwards: the new model alone, the user's file kept, no temporary file, the old shard gone
    expect(fs.readdirSync(dir).sort()).to.deep.equal([CLASSES_TXT, MODEL_JSON, META_JSON, 'group1-shard1of1-r2.bin', 'notes.txt'].sort());
    expect(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8')).to.equal('mine\n');
    // a meta.json edited by hand afterwards is read as it is
    const edited = { ...readMeta(dir)!, classNames: ['x', 'y', 'z'] };
    fs.writeFileSync(path.join(dir, META_JSON), JSON.stringify(edited));
    expect(readMeta(dir)!.classNames).to.deep.equal(['x', 'y', 'z']);
  });

  it('a model without meta replacing one with meta: never the new weights under the old meta', async () => {
    const dir = path.join(work, 'plain');
    await saveCamModel(dir, oldCam);
    const copies = await copiesDuring(dir, work, () => saveLayersModelToDir(dir, newCam.model, [[META_JSON, null], [CLASSES_TXT, null]]));
    const seen = copies.map(([point, copy]) => `${point.replace(/-r\d+\.bin/, '.bin')}: ${readMeta(copy) ? readMeta(copy)!.classNames.join(',') : 'no meta'}` +
      `, ${readClassesTxt(copy)?.join(',') ?? 'no classes'}`);
    expect(seen).to.deep.equal([
      'model:group1-shard1of1.bin:renamed: cat,dog, cat,dog',
      'model:model.json:renamed: no meta, no classes', // meta.json and classes.txt are still there: the old model's
      'model:companions-removed: no meta, no classes',
    ]);
    for (const [point, copy] of copies.slice(1)) {
      const cam = await loadCamModel(copy, { classNames: ['p', 'q', 'r'], preprocessing: 'unit' });
      expect(fcKernel(cam.model), point).to.deep.equal(fcKernel(newCam.model));
      cam.model.dispose();
    }
    expect(fs.existsSync(path.join(dir, META_JSON))).to.equal(false);
  });

  it('a save failing when model.json is renamed in keeps the old model whole and removes its own new shard', async () => {
    const dir = path.join(work, 'fail');
    await saveCamModel(dir, oldCam);
    const before = Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
    const rename = fs.promises.rename;
    fs.promises.rename = async (from, to) => {
      if (path.basename(String(to)) === MODEL_JSON) throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
      return rename(from, to);
    };
    try {
      let err: unknown;
      await saveCamModel(dir, newCam).catch((e) => { err = e; });
      expect((err as NodeJS.ErrnoException)?.code).to.equal('EIO');
    } finally {
      fs.promises.rename = rename;
    }
    const after = Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
    expect(after).to.deep.equal(before);
    const cam = await loadCamModel(dir);
    expect(cam.meta.classNames).to.deep.equal(['cat', 'dog']);
    cam.model.dispose();
  });
});
