import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { expectNoTensorLeak, useEngine } from '../helpers.js';
import type { Box, ImageRecord } from '../../src/data/types.js';
import { channelModel } from './models.js';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from '../helpers.js';
import { type BatchSource, Evaluator, classMapping, gridMappingFromGeometry, parseClassMap, runEvaluation } from '../../src/eval/evaluate.js';
import { boxToOriginal, composeGeometry, identityGeometry } from '../../src/data/geometry.js';
import { mapBoxToOriginal } from '../../src/eval/boxes.js';
import type { Dataset } from '../../src/data/types.js';

/** An 8×8 image with rectangles [x0, y0, x1, y1] (inclusive) painted in channel c with value v. */
function paint(rects: [number, Box, number][], size = 8): number[] {
  const px = new Array<number>(size * size * 3).fill(0);
  for (const [c, [x0, y0, x1, y1], v] of rects) {
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) px[(y * size + x) * 3 + c] = v;
  }
  return px;
}

function record(id: string, label: number, boxes: Box[], width = 16, height = 16): ImageRecord {
  return { id, path: `${id}.png`, label, width, height, boxes, split: 'test' };
}

describe('eval/evaluate (Evaluator)', () => {
  before(useEngine);

  // Original images are 16×16, the input 8×8: input pixel (x, y) covers original [2x, 2x+1] × [2y, 2y+1].
  const images = () => tf.tensor4d([
    ...paint([[0, [2, 1, 4, 3], 1]]), // red square → predicted red (correct), GT = its exact box → hit
    ...paint([[1, [0, 0, 1, 1], 1]]), // green in the corner → green (correct), GT exact → hit
    ...paint([[0, [4, 4, 7, 7], 1], [2, [0, 6, 0, 6], 1]]), // big red + one blue pixel, label blue → wrong, GT-known hit
    ...paint([[0, [0, 0, 2, 2], 1]]), // red, label red (correct), GT elsewhere → miss
  ], [4, 8, 8, 3]);
  const records = [
    record('a', 0, [[4, 2, 9, 7]]),
    record('b', 1, [[0, 0, 3, 3]]),
    record('c', 2, [[0, 12, 1, 13]]),
    record('d', 0, [[10, 10, 15, 15]]),
  ];

  it('computes classification, top-1/top-5/GT-known loc and MaxBoxAcc on a model whose CAMs are known', async () => {
    const ev = new Evaluator(channelModel(), [0, 1, 2]);
    const x = images();
    const rows = await ev.addBatch({ images: x, records });
    x.dispose();
    expect(rows.map((r) => r.correct)).to.deep.equal([true, true, false, true]);
    expect(rows.map((r) => r.iouTrue)).to.deep.equal([1, 1, 1, 0]);
    expect(rows[0].boxesTrue).to.deep.equal([[4, 2, 9, 7]]);
    expect(rows[2].ranked[0]).to.equal(0);
    // top-1 of image c is red: its map's box is the red square [8, 8, 15, 15], disjoint from the GT
    expect(rows[2].iouTop1).to.equal(0);
    const m = ev.result();
    expect(m.images).to.equal(4);
    expect(m.classification.top1).to.equal(75);
    expect(m.classification.k).to.equal(3);
    expect(m.classification.topK).to.equal(100);
    expect(m.localization.rule).to.include({ count: 4, top1Loc: 50, top5Loc: 75, gtKnownLoc: 75 });
    // binary maps: every τ gives the painted rectangles, so MaxBoxAcc = GT-known = 75 % at τ = 0
    expect(m.localization.maxBoxAcc.perIou[0].maxBoxAcc).to.equal(75);
    expect(m.localization.maxBoxAcc.perIou[0].bestThreshold).to.equal(0);
    expect(m.localization.maxBoxAccV2.perIou.map((p) => p.maxBoxAcc)).to.deep.equal([75, 75, 75]);
    expect(m.centerBaseline.count).to.equal(4);
  });

  it('flip averaging changes nothing for a mirror-equivariant model', async () => {
    const a = new Evaluator(channelModel(), [0, 1, 2]);
    const b = new Evaluator(channelModel(), [0, 1, 2], { flip: true });
    const x = images();
    const ra = await a.addBatch({ images: x, records });
    const rb = await b.addBatch({ images: x, records });
    x.dispose();
    expect(rb).to.deep.equal(ra);
    expect(b.result()).to.deep.equal(a.result());
  });

  it('an image without GT boxes counts for classification only', async () => {
    const ev = new Evaluator(channelModel(), [0, 1, 2]);
    const x = images();
    await ev.addBatch({ images: x, records: records.map((r, i) => (i === 3 ? { ...r, boxes: [] } : r)) });
    x.dispose();
    const m = ev.result();
    expect(m.classification.count).to.equal(4);
    expect(m.localization.count).to.equal(3);
    expect(m.localization.rule.gtKnownLoc).to.equal(100);
  });

  it('does not leak tensors over repeated batches (with and without flip)', async () => {
    const x = images();
    for (const flip of [false, true]) {
      const ev = new Evaluator(channelModel(), [0, 1, 2], { flip });
      await expectNoTensorLeak(async () => {
        await ev.addBatch({ images: x, records });
      });
    }
    x.dispose();
  });

  it('rejects images of the wrong size with one line', async () => {
    const ev = new Evaluator(channelModel(), [0, 1, 2]);
    const x = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    let msg = '';
    await ev.addBatch({ images: x, records: [records[0]] }).catch((e: Error) => { msg = e.message; });
    x.dispose();
    expect(msg).to.match(/expected images of 8×8 .* found 4×4/);
  });

  it("gridMappingFromGeometry agrees with the data pipeline's boxToOriginal (resize, then crop)", () => {
    // 500×375 image → resize to 256×240 → crop 224×224 at (16, 8)
    let g = identityGeometry(500, 375);
    g = composeGeometry(g, 256 / 500, 0, 240 / 375, 0, 256, 240);
    g = composeGeometry(g, 1, -16, 1, -8, 224, 224);
    const m = gridMappingFromGeometry(g);
    for (const b of [[0, 0, 223, 223], [10, 20, 30, 40], [100, 5, 100, 5]] as Box[]) {
      const want = boxToOriginal(b, g);
      const got = mapBoxToOriginal(b, m);
      got.forEach((v, i) => expect(v).to.be.closeTo(want[i], 1e-9));
    }
  });

  describe('classMapping', () => {
    it('is the identity for the same classes, by name otherwise, with overrides', () => {
      expect(classMapping(['a', 'b'], ['a', 'b'])).to.deep.equal([0, 1]);
      expect(classMapping(['Raccoon', 'cat'], ['dog', 'cat', 'raccoon'])).to.deep.equal([2, 1]);
      expect(classMapping(['kangaroo', 'raccoon'], ['wallaby', 'raccoon'], parseClassMap('kangaroo=wallaby'))).to.deep.equal([0, 1]);
    });
    it('names what cannot be mapped', () => {
      expect(() => classMapping(['kangaroo'], ['wallaby'])).to.throw(/kangaroo have no class of the same name .*--class-map/);
      expect(() => parseClassMap('kangaroo')).to.throw(/datasetClass=modelClass/);
    });
  });
});

describe('eval/evaluate (runEvaluation)', () => {
  before(useEngine);

  const pixels = [
    paint([[0, [2, 1, 4, 3], 1]]),
    paint([[1, [0, 0, 1, 1], 1]]),
    paint([[0, [4, 4, 7, 7], 1], [2, [0, 6, 0, 6], 1]]),
    paint([[0, [0, 0, 2, 2], 1]]),
  ];
  const dataset: Dataset = {
    name: 'toy',
    root: '/nowhere',
    classNames: ['red', 'green', 'blue'],
    records: [
      record('a', 0, [[4, 2, 9, 7]]),
      record('b', 1, [[0, 0, 3, 3]]),
      record('c', 2, [[0, 12, 1, 13]]),
      record('d', 0, [[10, 10, 15, 15]]),
      { ...record('t', 0, [[0, 0, 1, 1]]), split: 'train' },
    ],
  };
  const byId = new Map(['a', 'b', 'c', 'd'].map((id, i) => [id, pixels[i]]));
  /** Synthetic batch source: the painted images, `batchSize` at a time. */
  const source: BatchSource = async function* (records, { batchSize }) {
    for (let i = 0; i < records.length; i += batchSize) {
      const chunk = records.slice(i, i + batchSize);
      yield { images: tf.tensor4d(chunk.flatMap((r) => byId.get(r.id)!), [chunk.length, 8, 8, 3]), records: [...chunk] };
    }
  };

  it('streams batches, writes evaluation.json / .md / per-image.csv / confusion.csv, and leaks no tensor', async () => {
    const dir = makeTempDir();
    const out = path.join(dir, 'eval-toy-test');
    const camModel = channelModel();
    const run = () => runEvaluation({
      camModel, model: { ref: 'channel', source: 'memory', name: 'channel' }, dataset, split: 'test',
      batches: source, outDir: out, batchSize: 3,
    });
    let result = await run();
    await expectNoTensorLeak(async () => { result = await run(); });
    expect(fs.readdirSync(out).sort()).to.deep.equal(['confusion.csv', 'evaluation.json', 'evaluation.md', 'per-image.csv']);
    expect(fs.readdirSync(dir)).to.deep.equal(['eval-toy-test']); // no temporary left behind
    const json = JSON.parse(fs.readFileSync(path.join(out, 'evaluation.json'), 'utf8'));
    expect(json.dataset).to.include({ name: 'toy', split: 'test', images: 4 });
    expect(json.dataset.fingerprint).to.match(/^[0-9a-f]{64}$/);
    expect(json.settings).to.include({ camThreshold: 0.2, boxes: 'largest', batchSize: 3, flip: false });
    expect(json.metrics.localization.rule).to.include({ top1Loc: 50, top5Loc: 75, gtKnownLoc: 75 });
    expect(json.metrics.classification.top1).to.equal(75);
    expect(json.model).to.include({ name: 'channel', headKind: 'conv-gap', numClasses: 3 });
    const csv = fs.readFileSync(path.join(out, 'per-image.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).to.equal('id,true_class,correct,top_classes,iou_true,iou_top1,hit,boxes_true,iou_center');
    expect(csv).to.have.length(5);
    expect(csv[1]).to.match(/^a,red,1,red;[a-z]+;[a-z]+,1\.0000,1\.0000,1,4 2 9 7,/);
    expect(csv[3]).to.match(/^c,blue,0,red;blue;green,1\.0000,0\.0000,1,0 12 1 13,/);
    expect(fs.readFileSync(path.join(out, 'confusion.csv'), 'utf8')).to.equal(
      'true\\predicted,red,green,blue\nred,2,0,0\ngreen,0,1,0\nblue,1,0,0\n',
    );
    expect(result.markdown).to.match(/\| GT-known loc \| gapcam \| 75\.00 \| [0-9.]+ \|/);
    expect(fs.readFileSync(path.join(out, 'evaluation.md'), 'utf8')).to.equal(result.markdown);
  });

  it('--limit evaluates the first images only; an empty split is a one-line error', async () => {
    const dir = makeTempDir();
    const r = await runEvaluation({
      camModel: channelModel(), model: { ref: 'c', source: 'm', name: 'c' }, dataset, split: 'test', batches: source,
      outDir: path.join(dir, 'o'), limit: 2,
    });
    expect(r.report.metrics.images).to.equal(2);
    let msg = '';
    await runEvaluation({ camModel: channelModel(), model: { ref: 'c', source: 'm', name: 'c' }, dataset, split: 'val', batches: source, outDir: path.join(dir, 'p') })
      .catch((e: Error) => { msg = e.message; });
    expect(msg).to.equal('dataset toy: the val split has no image');
  });
});
