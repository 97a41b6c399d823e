// darknet-tiny (a real ImageNet model with a 1×1 class-score conv → GAP head) on the kangaroo photos: the CAM of
// `wallaby` (class id 215, the closest ImageNet class) peaks inside a ground-truth kangaroo box for most images.
// Measured once over all 164 photos (hottest 14×14 cell centre inside a GT box): 161/164 = 98.2 %.
import * as tf from '@tensorflow/tfjs';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { useEngine, darknetTinyDir, sharedDatasetsDir, expectNoTensorLeak } from '../helpers.js';
import { loadCamModel } from '../../src/models/meta.js';
import { loadDataset } from '../../src/data/datasets.js';
import { classActivationMaps } from '../../src/cam/class-maps.js';
import { createCamMethod } from '../../src/cam/registry.js';
import { loadCamInput, batchOf } from '../../src/cam/input.js';
import type { CamModel } from '../../src/models/types.js';
import type { ImageRecord } from '../../src/data/types.js';

const WALLABY = 215;

describe('cam on darknet-tiny (kangaroo photos)', function () {
  let cm: CamModel;
  let recs: ImageRecord[];
  before(async function () {
    await useEngine();
    if (!fs.existsSync(path.join(darknetTinyDir, 'model.json'))) this.skip();
    cm = await loadCamModel(darknetTinyDir);
    const ds = await loadDataset(path.join(sharedDatasetsDir, 'kangaroo'), { minClasses: 1 });
    // every 8th photo: 21 images spread over the set
    recs = ds.records.filter((_, i) => i % 8 === 0);
  });

  it('is read as a conv-gap model whose class 215 is wallaby', () => {
    expect(cm.meta.headKind).to.equal('conv-gap');
    expect(cm.meta.featureLayer).to.equal('conv2d_16');
    expect(cm.meta.classNames[WALLABY]).to.equal('wallaby');
  });

  it('the wallaby CAM peaks inside a GT box for most images', async () => {
    const inputs = await Promise.all(recs.map((r) => loadCamInput(r.path, cm.meta.inputSize, cm.meta.preprocessing)));
    const x = batchOf(inputs, cm.meta.inputSize);
    const res = classActivationMaps(cm, x, recs.map(() => [WALLABY]));
    const maps = res.maps.arraySync();
    let hits = 0;
    recs.forEach((r, i) => {
      const m = maps[i];
      const h = m.length, w = m[0].length;
      let best = -Infinity, by = 0, bx = 0;
      for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) if (m[y][xx][0] > best) { best = m[y][xx][0]; by = y; bx = xx; }
      // centre of the hottest cell, in original pixels (the input is a plain stretch of the photo)
      const px = ((bx + 0.5) * r.width) / w, py = ((by + 0.5) * r.height) / h;
      if (r.boxes.some((b) => px >= b[0] && px < b[2] + 1 && py >= b[1] && py < b[3] + 1)) hits++;
    });
    tf.dispose([x, res.logits, res.maps]);
    expect(hits / recs.length, `${hits}/${recs.length} hottest points inside a GT box`).to.be.at.least(0.8);
  });

  it('CAM and Grad-CAM at conv2d_16 agree after ReLU and normalisation, and neither leaks', async () => {
    const inputs = await Promise.all(recs.slice(0, 2).map((r) => loadCamInput(r.path, cm.meta.inputSize, cm.meta.preprocessing)));
    const x = batchOf(inputs, cm.meta.inputSize);
    const cam = createCamMethod('cam', cm, { relu: true });
    const grad = createCamMethod('gradcam', cm);
    expect(grad.layer).to.equal('conv2d_16');
    const a = cam.computeNormalized(x, [[WALLABY], [WALLABY]]);
    const b = grad.computeNormalized(x, [[WALLABY], [WALLABY]]);
    const diff = tf.max(tf.abs(tf.sub(a.maps, b.maps))).arraySync() as number;
    expect(diff).to.be.below(1e-4);
    tf.dispose([a.logits, a.maps, b.logits, b.maps]);
    await expectNoTensorLeak(() => {
      const r = grad.compute(x, [[WALLABY], [1]]);
      tf.dispose([r.logits, r.maps]);
    }, 2);
    x.dispose();
  });
});
