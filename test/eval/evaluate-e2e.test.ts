// End to end: a saved model folder + a CSV dataset of PNGs on disk → evaluate() → report folder. The model's CAM of
// class c is the input's channel c (see channelModel), so the expected boxes are the painted squares.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { makeTempDir, useEngine } from '../helpers.js';
import { encodePng } from '../../src/data/image.js';
import { saveCamModel } from '../../src/models/meta.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { channelModel } from './models.js';

/** A 16×16 RGB image with squares [x0, y0, x1, y1] (inclusive, original pixels) painted 255 in channel c. */
function png(rects: [number, [number, number, number, number]][]): Promise<Buffer> {
  const data = new Uint8Array(16 * 16 * 3);
  for (const [c, [x0, y0, x1, y1]] of rects) {
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) data[(y * 16 + x) * 3 + c] = 255;
  }
  return encodePng({ data, width: 16, height: 16 });
}

describe('eval/evaluate (end to end from disk)', () => {
  before(useEngine);

  it('loads the model folder and a CSV dataset, maps input boxes back to 16×16 originals, writes the report', async () => {
    const dir = makeTempDir();
    const modelDir = path.join(dir, 'model');
    const cam = channelModel(8);
    await saveCamModel(modelDir, cam);
    cam.model.dispose();
    const data = path.join(dir, 'data');
    fs.mkdirSync(data);
    const images: [string, string, [number, [number, number, number, number]][], [number, number, number, number]][] = [
      ['a.png', 'red', [[0, [4, 2, 9, 7]]], [4, 2, 9, 7]],
      ['b.png', 'green', [[1, [0, 0, 3, 3]]], [0, 0, 3, 3]],
      ['c.png', 'blue', [[0, [8, 8, 15, 15]], [2, [0, 12, 1, 13]]], [0, 12, 1, 13]],
      ['d.png', 'red', [[0, [0, 0, 5, 5]]], [10, 10, 15, 15]],
    ];
    let csv = 'path,label,x0,y0,x1,y1,split\n';
    for (const [file, label, rects, box] of images) {
      fs.writeFileSync(path.join(data, file), await png(rects));
      csv += `${file},${label},${box.join(',')},test\n`;
    }
    fs.writeFileSync(path.join(data, 'manifest.csv'), csv);

    const out = path.join(dir, 'eval');
    const run = await evaluate({ checkpoint: modelDir, dataset: path.join(data, 'manifest.csv'), out, batchSize: 3 });
    const m = run.report.metrics;
    expect(m.images).to.equal(4);
    expect(m.classification.top1).to.equal(75);
    expect(m.localization.rule).to.include({ top1Loc: 50, top5Loc: 75, gtKnownLoc: 75 });
    expect(run.report.model.modelJsonSha256).to.match(/^[0-9a-f]{64}$/);
    expect(run.report.dataset.images).to.equal(4);
    const rows = fs.readFileSync(path.join(out, 'per-image.csv'), 'utf8').trim().split('\n').slice(1);
    // image a: the red square, found on the 8×8 input and mapped back ×2 onto the 16×16 original
    expect(rows[0]).to.match(/^a\.png,red,1,red;/);
    const boxA = rows[0].split(',')[7].split(' ').map(Number);
    expect(boxA).to.deep.equal([4, 2, 9, 7]);
    expect(fs.readdirSync(out).sort()).to.deep.equal(['confusion.csv', 'evaluation.json', 'evaluation.md', 'per-image.csv']);

    // --protocol wsolevaluation: GT boxes resized to the 8×8 input and truncated (a: [2, 1, 4, 3]), contour boxes
    // x, y, x + w, y + h (a: [2, 1, 5, 4], IoU 9/16 = 0.5625; b: [0, 0, 2, 2] vs [0, 0, 1, 1], IoU 4/9; c: the blue
    // pixel [0, 6, 1, 7] vs [0, 6, 0, 6], IoU 1/4; d: disjoint). A mask beside the images gives PxAP.
    fs.mkdirSync(path.join(data, 'masks'));
    fs.writeFileSync(path.join(data, 'masks', 'a.png'), await png([[0, [4, 2, 9, 7]], [1, [4, 2, 9, 7]], [2, [4, 2, 9, 7]]]));
    const w = await evaluate({ checkpoint: modelDir, dataset: path.join(data, 'manifest.csv'), out: path.join(dir, 'eval-w'), batchSize: 3,
      settings: { protocol: 'wsolevaluation' } });
    const wm = w.report.metrics;
    expect(w.report.settings.protocol).to.equal('wsolevaluation');
    expect(wm.localization.rule).to.include({ top1Loc: 25, top5Loc: 25, gtKnownLoc: 25 });
    // (sharp's resampling leaves faint values around the squares, so compare at τ = 0.2 rather than at the best τ)
    expect(wm.localization.maxBoxAcc.perIou[0].accuracies[20]).to.equal(25);
    expect(wm.localization.maxBoxAccV2.perIou.map((r) => r.accuracies[20])).to.deep.equal([50, 25, 0]);
    expect(wm.pxap).to.include({ images: 1, value: 100 });
    expect(w.markdown).to.contain('Localization protocol: wsolevaluation').and.to.match(/\| GT-known loc \| wsolevaluation \| 25\.00 \|/);
    expect(w.markdown).to.match(/\| PxAP \(1 masks\) \| wsolevaluation \| 100\.00 \|/);
    expect(run.markdown).to.match(/\| GT-known loc \| gapcam \| 75\.00 \|/);
  });

  it("without --dataset, evaluates a training run on the dataset recorded in its run.json (test split)", async () => {
    const dir = makeTempDir();
    const data = path.join(dir, 'data');
    fs.mkdirSync(data);
    fs.writeFileSync(path.join(data, 'a.png'), await png([[0, [4, 2, 9, 7]]]));
    fs.writeFileSync(path.join(data, 'b.png'), await png([[1, [0, 0, 3, 3]]]));
    fs.writeFileSync(path.join(data, 'm.csv'), 'path,label,x0,y0,x1,y1,split\na.png,red,4,2,9,7,test\nb.png,green,0,0,3,3,train\n');
    const runDir = path.join(dir, 'run');
    const cam = channelModel(8);
    await saveCamModel(path.join(runDir, 'best'), cam);
    cam.model.dispose();
    fs.writeFileSync(path.join(runDir, 'run.json'), JSON.stringify({ dataset: { name: 'm', spec: path.join(data, 'm.csv'), dataRoot: dir } }));
    const r = await evaluate({ checkpoint: runDir, out: path.join(dir, 'e') });
    expect(r.report.dataset).to.include({ split: 'test', images: 1 });
    expect(r.report.metrics.localization.rule.gtKnownLoc).to.equal(100);
    let err: unknown;
    try { await evaluate({ checkpoint: path.join(runDir, 'best', '..', 'best'), out: path.join(dir, 'e2') }); } catch (e) { err = e; }
    expect(err, 'best/ inside the run folder finds the run too').to.equal(undefined);
    const lone = path.join(dir, 'lone');
    const cam2 = channelModel(8);
    await saveCamModel(lone, cam2);
    cam2.model.dispose();
    try { await evaluate({ checkpoint: lone }); } catch (e) { err = e; }
    expect((err as Error).message).to.match(/^evaluate: no --dataset given, and .* is not a training run that records its dataset/);
  });
});
