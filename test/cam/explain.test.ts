// The library's short path (loadCam → explain) against `gapcam cam` on a real photo: the same class and
// probabilities, the same maps, the same box; and camBox against the numbers the issue quotes for kangaroo/00001.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { darknetTinyDir, expectNoTensorLeak, makeTempDir, sharedDatasetsDir, useEngine } from '../helpers.js';
import { loadCam, type CamExplainer } from '../../src/cam/explain.js';
import { runCam, type CamImageResult } from '../../src/cam/service.js';
import { loadDataset } from '../../src/data/datasets.js';
import { iou, maxIou, resizeMapping } from '../../src/eval/boxes.js';
import { ruleIou } from '../../src/eval/localization.js';
import { readNpy } from '../../src/util/npy.js';
import type { ImageRecord } from '../../src/data/types.js';

describe('cam: the library short path (loadCam, explain, camBox)', function () {
  this.timeout(120_000);
  let explainer: CamExplainer;
  let k1: ImageRecord;
  before(async function () {
    if (!fs.existsSync(darknetTinyDir)) this.skip();
    await useEngine();
    explainer = await loadCam(darknetTinyDir);
    const ds = await loadDataset('kangaroo', { dataRoot: sharedDatasetsDir, minClasses: 1 });
    k1 = ds.records.find((r) => r.id.endsWith('00001'))!;
  });
  after(() => explainer?.dispose());

  it('gives the CLI box for kangaroo/00001 (IoU 0.610 where the raw 14×14 grid gives 0.511)', async () => {
    const e = await explainer.explain(k1.path, { class: 'wallaby' });
    expect(e.className).to.equal('wallaby');
    expect([e.raw.width, e.raw.height]).to.deep.equal([14, 14]);
    expect(maxIou([e.box!], k1.boxes)).to.be.closeTo(0.610, 0.0005);
    const onGrid = ruleIou(e.raw, k1.boxes, resizeMapping(k1, 14, 14));
    expect(onGrid.iou).to.be.closeTo(0.511, 0.0005);
  });

  it('matches `gapcam cam` on the same photo: class, probability, box, raw and normalised maps', async () => {
    const out = makeTempDir();
    await runCam({ model: darknetTinyDir, images: k1.path, classes: ['top1'], npy: 'raw', out });
    const cli = (JSON.parse(fs.readFileSync(path.join(out, 'cam.json'), 'utf8')) as { images: CamImageResult[] }).images[0];
    const e = await explainer.explain(k1.path);
    expect(e.classId).to.equal(cli.classes[0].classId);
    expect(e.probability).to.be.closeTo(cli.classes[0].probability, 1e-6);
    expect(e.box).to.deep.equal(cli.methods.cam.camBox);
    const npy = readNpy(path.join(out, cli.methods.cam.npy![0]));
    expect(npy.shape).to.deep.equal([14, 14]);
    let maxDiff = 0;
    npy.data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - e.raw.data[i]))));
    expect(maxDiff).to.be.below(1e-4);
    expect([e.map.width, e.map.height]).to.deep.equal([224, 224]);
    expect([e.mapOriginal.width, e.mapOriginal.height]).to.deep.equal([k1.width, k1.height]);
    for (const m of [e.map, e.mapOriginal]) {
      expect(m.data.reduce((a, b) => Math.min(a, b), Infinity)).to.equal(0);
      expect(m.data.reduce((a, b) => Math.max(a, b), -Infinity)).to.equal(1);
    }
    expect(e.top5.map((c) => c.classId)[0]).to.equal(e.classId);
    const png = await explainer.overlay(e);
    expect(png.subarray(1, 4).toString()).to.equal('PNG');
  });

  it('gradient methods by name; wrong class names are one-line errors; no tensor is left behind', async () => {
    const g = await explainer.explain(k1.path, { method: 'gradcam', class: 'wallaby' });
    expect(g.method).to.equal('gradcam');
    expect(g.box).to.not.equal(undefined);
    expect(iou(g.box!, g.box!)).to.equal(1);
    let err: unknown;
    await explainer.explain(k1.path, { class: 'walaby' }).catch((x: unknown) => (err = x));
    expect(String(err)).to.match(/walaby/);
    await expectNoTensorLeak(async () => {
      await explainer.explain(k1.path, { method: 'cam' });
      await explainer.explain(k1.path, { method: 'gradcam' });
    });
    void tf;
  });
});
