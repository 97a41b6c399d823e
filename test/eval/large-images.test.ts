// Huge photos with boxes in evaluation: the decode goes straight to the model's input size (sharp resizes while
// decoding: JPEG shrink-on-load, PNG read sequentially; src/data/prepare.ts), with the exact geometry, so a
// 6000×4000 photo is scored as the same picture at 600×400 with its boxes mapped back to its own pixels, and no
// full-size copy of the pixels is ever held.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { makeTempDir, useEngine } from '../helpers.js';
import { runMain } from '../engine/run-cli.js';
import { projectRoot } from '../../src/paths.js';
import { writeTinyModel } from '../cam/fixtures.js';

/** A dark picture with a bright rectangle over the box's quarter-to-three-quarters area, at `scale` × (60×40). */
async function writePicture(file: string, scale: number, format: 'jpeg' | 'png'): Promise<void> {
  const [w, h] = [60 * scale, 40 * scale];
  const rect = await sharp({ create: { width: 30 * scale, height: 20 * scale, channels: 3, background: { r: 240, g: 230, b: 220 } } }).png().toBuffer();
  const img = sharp({ create: { width: w, height: h, channels: 3, background: { r: 15, g: 25, b: 35 } } })
    .composite([{ input: rect, left: 15 * scale, top: 10 * scale }]);
  await (format === 'jpeg' ? img.jpeg({ quality: 95 }) : img.png({ compressionLevel: 1 })).toFile(file);
}

/** A VOC folder holding that picture at `scale` (class c0, its box the rectangle's). */
async function writeVoc(root: string, scale: number, format: 'jpeg' | 'png'): Promise<string> {
  fs.mkdirSync(path.join(root, 'images'), { recursive: true });
  fs.mkdirSync(path.join(root, 'annotations'), { recursive: true });
  await writePicture(path.join(root, 'images', `p.${format === 'jpeg' ? 'jpg' : 'png'}`), scale, format);
  const [w, h] = [60 * scale, 40 * scale];
  fs.writeFileSync(path.join(root, 'annotations', 'p.xml'), `<annotation><filename>p.${format === 'jpeg' ? 'jpg' : 'png'}</filename><size><width>${w}</width><height>${h}</height>` +
    `<depth>3</depth></size><object><name>c0</name><bndbox><xmin>${15 * scale}</xmin><ymin>${10 * scale}</ymin><xmax>${45 * scale - 1}</xmax>` +
    `<ymax>${30 * scale - 1}</ymax></bndbox></object></annotation>`);
  return root;
}

describe('evaluation of huge photos', function () {
  this.timeout(120_000);
  let tmp: string;
  before(async () => {
    await useEngine();
    tmp = makeTempDir('gapcam-large-');
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const format of ['png', 'jpeg'] as const) {
    it(`a 6000×4000 ${format} photo is scored as the same picture at 600×400, its boxes in its own pixels`, async () => {
      const model = await writeTinyModel(path.join(tmp, format));
      const rows: Record<string, string>[] = [];
      for (const scale of [100, 10]) {
        const voc = await writeVoc(path.join(tmp, format, `voc-${scale}`), scale, format);
        const out = path.join(tmp, format, `eval-${scale}`);
        const r = await runMain(['evaluate', model, '--dataset', voc, '--split', 'train', '--out', out]);
        expect(r.code, r.stderr).to.equal(0);
        const [header, row] = fs.readFileSync(path.join(out, 'per-image.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
        rows.push(Object.fromEntries(header.map((k, i) => [k, row[i]])));
      }
      const [big, small] = rows;
      expect(big.top_classes).to.equal(small.top_classes);
      for (const k of ['iou_true', 'iou_center']) expect(Number(big[k]), k).to.be.closeTo(Number(small[k]), 0.001);
      // (the two 24×24 inputs differ by a level here and there — Lanczos from 6000 or from 600 pixels — and a cell of
      // the untrained model's top-1 map lies near the 20 % threshold)
      expect(Number(big.iou_top1), 'iou_top1').to.be.closeTo(Number(small.iou_top1), 0.02);
      // the same box on the model's grid, mapped to each photo's pixels (inclusive pixel edges: x2 ↦ (x2 + 1)·10 − 1)
      const box = (s: string) => s.split(' ').map(Number);
      const [bx1, by1, bx2, by2] = box(big.boxes_true);
      const [sx1, sy1, sx2, sy2] = box(small.boxes_true);
      expect(bx2 - bx1, 'a box, not the whole photo').to.be.below(6000);
      const expected = [sx1 * 10, sy1 * 10, (sx2 + 1) * 10 - 1, (sy2 + 1) * 10 - 1];
      // (the CSV has two decimals: ten times the small photo's rounding)
      [bx1, by1, bx2, by2].forEach((v, i) => expect(v, `box edge ${i}: ${big.boxes_true} vs ${small.boxes_true}`).to.be.closeTo(expected[i], 0.06));
    });
  }

  it('decoding a 7980×5320 PNG for evaluation holds no full-size copy (peak memory well under its 127 MB of RGB)', async () => {
    const big = path.join(tmp, 'big.png');
    await writePicture(big, 133, 'png'); // 7980×5320
    const small = path.join(tmp, 'small.png');
    await writePicture(small, 1, 'png');
    // A fresh process, so that its peak resident memory (VmHWM) measures this decode alone; the transforms are the
    // ones evaluate's batch source gives prepareImage (eval/evaluate.ts pipelineBatchSource).
    const script = path.join(tmp, 'decode.mts');
    fs.writeFileSync(script, `
      import fs from 'node:fs';
      import { prepareImage } from ${JSON.stringify(path.join(projectRoot, 'src', 'data', 'prepare.ts'))};
      const hwm = () => Number(/VmHWM:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const job = { transforms: [{ op: 'resize', size: [24, 24], mode: 'exact' }] };
      await prepareImage(${JSON.stringify(small)}, job); // sharp and libvips loaded and warm
      const before = hwm();
      const p = await prepareImage(${JSON.stringify(big)}, job);
      console.log(JSON.stringify({ grew: hwm() - before, width: p.width, height: p.height, geometry: p.geometry }));
    `);
    const child = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: projectRoot, encoding: 'utf8' });
    expect(child.status, child.stderr).to.equal(0);
    const got = JSON.parse(child.stdout.trim().split('\n').pop()!) as { grew: number; width: number; height: number; geometry: { ax: number; ay: number; srcWidth: number; srcHeight: number } };
    expect([got.width, got.height]).to.deep.equal([24, 24]);
    expect(got.geometry).to.include({ srcWidth: 7980, srcHeight: 5320 });
    expect(got.geometry.ax).to.equal(24 / 7980);
    expect(got.grew, `peak memory grew by ${(got.grew / 1e6).toFixed(0)} MB`).to.be.below((7980 * 5320 * 3) / 2);
  });
});
