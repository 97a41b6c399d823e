// `gapcam model export --web` on disk (no browser): the folder's files, meta.json, the page's embedded meta and
// script reference, float32 and quantised weight sizes, a rerun onto the same folder (replaces its own files, keeps
// the user's), and the folders it refuses (a model folder, a training checkpoint, a model that is not CAM-ready).
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine, makeTempDir } from '../helpers.js';
import { writeTinyModel } from '../cam/fixtures.js';
import { exportWeb, formatWebExport } from '../../src/web/export.js';
import { loadLayersModelFromDir, saveLayersModelToDir } from '../../src/models/layers-io.js';
import type { WebMeta } from '../../src/web/meta.js';
import { UserError } from '../../src/errors.js';

async function expectUserError(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(pattern);
    return;
  }
  expect.fail(`expected a UserError matching ${pattern}`);
}

describe('web export: the folder on disk', function () {
  this.timeout(300_000);
  let dir: string;
  let model: string;
  before(async () => {
    await useEngine();
    dir = makeTempDir('gapcam-web-files-');
    model = await writeTinyModel(dir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the page, one script, the wasm binaries, meta.json and the model; a rerun with uint8 weights replaces them', async () => {
    const out = path.join(dir, 'page');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
    const r = await exportWeb({ model, out });
    expect(Object.keys(r.files).sort()).to.deep.equal([
      'gapcam-web.js', 'index.html', 'meta.json', 'model/group1-shard1of1.bin', 'model/model-inline.js', 'model/model.json',
      'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm', 'tfjs-backend-wasm.wasm',
    ]);
    for (const [name, bytes] of Object.entries(r.files)) expect(fs.statSync(path.join(out, name)).size, name).to.equal(bytes);
    const meta = JSON.parse(fs.readFileSync(path.join(out, 'meta.json'), 'utf8')) as WebMeta;
    expect(meta.classNames).to.deep.equal(['c0', 'c1', 'c2']);
    expect(meta.web).to.include({ weights: 'float32', camThreshold: 0.2, modelDir: 'model' });
    expect(meta.featureLayer).to.be.a('string');
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).to.include('<script src="gapcam-web.js"></script>');
    const embedded = /<script type="application\/json" id="gapcam-meta">(.*?)<\/script>/s.exec(html);
    expect(JSON.parse(embedded![1])).to.deep.equal(meta);
    // (the bundle itself is the browser-safety check: esbuild's platform 'browser' refuses any Node module import)
    expect(fs.readFileSync(path.join(out, 'gapcam-web.js'), 'utf8')).to.match(/^"use strict";\(\(\)=>\{/);
    expect(r.weightBytes.written).to.equal(r.weightBytes.float32);
    expect(formatWebExport(r)).to.match(/weights 0\.00 MB \(float32\); script \d\.\d\d MB; 9 files/);

    const q = await exportWeb({ model, out, quantization: 'uint8' });
    const params = (await loadLayersModelFromDir(model)).countParams();
    expect(q.weightBytes).to.deep.equal({ float32: params * 4, written: params });
    expect(JSON.parse(fs.readFileSync(path.join(out, 'meta.json'), 'utf8')).web.weights).to.equal('uint8');
    // the new shard took a name the previous model.json did not list (that model stayed whole until replaced), and
    // the previous shard is gone
    const listed = (JSON.parse(fs.readFileSync(path.join(out, 'model', 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] }).weightsManifest[0].paths;
    expect(listed).to.deep.equal(['group1-shard1of1-r2.bin']);
    expect(fs.readdirSync(path.join(out, 'model')).filter((f) => f.endsWith('.bin'))).to.deep.equal(listed);
    const reloaded = await loadLayersModelFromDir(path.join(out, 'model'));
    expect(reloaded.countParams()).to.equal(params);
    reloaded.dispose();
    expect(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8')).to.equal('mine');
    expect(fs.readdirSync(out).filter((f) => f.includes('.tmp-'))).to.deep.equal([]);
  });

  it('refuses a model folder, a training checkpoint and a model without a CAM head', async () => {
    await expectUserError(exportWeb({ model, out: model }), /holds a meta\.json that gapcam model export --web did not write/);
    const ckpt = path.join(dir, 'ckpt');
    fs.mkdirSync(ckpt);
    fs.writeFileSync(path.join(ckpt, 'train-state.json'), '{}');
    await expectUserError(exportWeb({ model, out: ckpt }), /is a training checkpoint/);
    const plain = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [4, 4, 3] }), tf.layers.dense({ units: 2 })] });
    const plainDir = path.join(dir, 'plain');
    await saveLayersModelToDir(plainDir, plain);
    plain.dispose();
    await expectUserError(exportWeb({ model: plainDir, out: path.join(dir, 'page2') }), /not CAM-ready/);
  });
});
