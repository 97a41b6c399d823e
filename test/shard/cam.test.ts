// Sharded `gapcam cam`: 3 shards + merge give one gallery and one cam.json over all images, equal to the unsharded
// run's (localization summary from the per-image IoUs, faithfulness from the summed accumulators).
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { makeTempDir, useEngine } from '../helpers.js';
import { runCam, type CamReport, type CamRunOptions } from '../../src/cam/service.js';
import { mergeParts } from '../../src/shard/merge.js';
import { saveCamModel } from '../../src/models/meta.js';
import { buildEmbeddedDataset, DEFAULT_EMBEDDED_PARAMS } from '../../src/data/embedded.js';
import { loadDataset } from '../../src/data/datasets.js';
import { tinyGapDense } from '../cam/tiny-models.js';

const camJson = (dir: string): CamReport => JSON.parse(fs.readFileSync(path.join(dir, 'cam.json'), 'utf8')) as CamReport;

describe('shard: cam as 1 process and as 3 shards + merge', function () {
  before(useEngine);

  it('one gallery over all shards, the same cards, IoUs and faithfulness metrics as the unsharded run', async () => {
    const root = makeTempDir();
    await buildEmbeddedDataset(path.join(root, 'data'), { ...DEFAULT_EMBEDDED_PARAMS, trainPerClass: 1, testPerClass: 1 });
    const dataset = path.join(root, 'data', 'digits-loc');
    const cam = tinyGapDense({ size: 32, classes: 10, seed: 3 });
    cam.meta.classNames = (await loadDataset(dataset)).classNames;
    await saveCamModel(path.join(root, 'model'), cam);
    cam.model.dispose();
    const options: Omit<CamRunOptions, 'out'> = {
      model: path.join(root, 'model'), dataset, split: 'test', methods: ['cam', 'gradcam'], limit: 6, batchSize: 2,
      metrics: true, metricSteps: 2,
    };
    const whole = path.join(root, 'whole');
    const sharded = path.join(root, 'sharded');
    await runCam({ ...options, out: whole });
    for (const index of [0, 1, 2]) await runCam({ ...options, out: sharded, shard: { index, count: 3, source: '--shard' } });
    expect(camJson(path.join(sharded, 'shard-1-of-3')).summary.out).to.equal(path.join(sharded, 'shard-1-of-3'));
    const merged = await mergeParts([sharded]);
    expect(merged).to.include({ kind: 'cam', images: 6, parts: 3 });

    const a = camJson(whole);
    const b = camJson(sharded);
    const unprefix = (p: string): string => p.replace(/^shard-\d+-of-3\//, '');
    expect(b.gallery.cards.map((c) => ({ ...c, original: unprefix(c.original), overlays: c.overlays.map((o) => ({ ...o, path: unprefix(o.path) })) }))).to.deep.equal(a.gallery.cards);
    expect(b.images.map((r) => ({ ...r, methods: Object.fromEntries(Object.entries(r.methods).map(([m, e]) => [m, { ...e, overlays: e.overlays.map(unprefix) }])) }))).to.deep.equal(a.images);
    for (const m of ['cam', 'gradcam']) {
      expect(b.summary.meanIou?.[m]).to.be.closeTo(a.summary.meanIou?.[m] as number, 1e-12);
      expect(b.summary.locAccuracy?.[m]).to.equal(a.summary.locAccuracy?.[m]);
      const [fa, fb] = [a.summary.metrics?.[m], b.summary.metrics?.[m]];
      expect(fb?.images).to.equal(6);
      for (const k of ['averageDrop', 'increaseInConfidence', 'deletionAuc', 'insertionAuc'] as const) expect(fb?.[k]).to.be.closeTo(fa?.[k] as number, 1e-9);
    }
    expect(b.gallery.info.notes).to.deep.equal(a.gallery.info.notes);
    // every picture the merged gallery links to exists
    const html = fs.readFileSync(path.join(sharded, 'index.html'), 'utf8');
    const links = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => decodeURIComponent(m[1]));
    expect(links).to.have.length(6 * 3);
    for (const l of links) expect(fs.existsSync(path.join(sharded, l)), l).to.equal(true);
  });
});
