// Resource limits (issue 12): text files a user points at are read with a size cap (a link to /dev/zero grew to
// 4 GB before), CUB images.txt paths may not leave the images folder, cam shrinks large images while decoding and
// caps its pictures at --overlay-size (2048 by default), and images over sharp's pixel limit stay a one-line error.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { useEngine, makeTempDir } from '../helpers.js';
import { runMain, gapcamStderr } from '../engine/run-cli.js';
import { writeTinyModel } from '../cam/fixtures.js';
import { loadDataset } from '../../src/data/datasets.js';
import { readClassesTxt } from '../../src/models/meta.js';
import { READ_LIMITS, readTextBounded } from '../../src/util/bounded-read.js';
import { UserError } from '../../src/errors.js';

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: Error) => e);
}

function oneLine(r: { code: number; stderr: string }): string {
  expect(r.code, r.stderr).to.equal(2);
  const lines = gapcamStderr(r.stderr).filter((l) => l.startsWith('gapcam: ') && !l.startsWith('gapcam: engine'));
  expect(lines, r.stderr).to.have.length(1);
  return lines[0];
}

/** A valid small PNG whose header is rewritten to claim width × height (CRC fixed): sharp refuses it from the
 *  header alone, as it would the real 770 KB 16000×16000 file, without this test making one. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#123456' } }).png().toBuffer();
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(zlib.crc32(out.subarray(12, 29)) >>> 0, 29);
  return out;
}

describe('data limits: bounded reads, paths inside the dataset, image sizes', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => { tmp = makeTempDir('gapcam-limits-'); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a manifest, annotation or label file linked to /dev/zero is refused at once in one line', async () => {
    const csv = path.join(tmp, 'zero.csv');
    fs.symlinkSync('/dev/zero', csv);
    expect((await rejection(loadDataset(csv))).message).to.match(/^cannot tell the layout of .*zero\.csv/);
    const err = await rejection(loadDataset(`csv:${csv}`));
    expect(err).to.be.instanceOf(UserError);
    expect(err.message).to.equal(`CSV manifest ${csv} is not a regular file (a device, pipe or socket); expected a text file`);

    const voc = path.join(tmp, 'voc');
    fs.mkdirSync(path.join(voc, 'images'), { recursive: true });
    fs.mkdirSync(path.join(voc, 'annotations'));
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } }).png().toFile(path.join(voc, 'images', 'a.png'));
    fs.symlinkSync('/dev/zero', path.join(voc, 'annotations', 'a.xml'));
    expect((await rejection(loadDataset(voc))).message).to.match(/^VOC annotation .*a\.xml is not a regular file/);

    const model = path.join(tmp, 'model-dir');
    fs.mkdirSync(model);
    fs.symlinkSync('/dev/zero', path.join(model, 'classes.txt'));
    expect(() => readClassesTxt(model)).to.throw(UserError, /^class list .*classes\.txt is not a regular file/);
  });

  it('a file larger than its cap is refused from its size (a sparse file: no disk used)', () => {
    const big = path.join(tmp, 'huge.xml');
    fs.writeFileSync(big, '');
    fs.truncateSync(big, READ_LIMITS.annotation + 1);
    expect(() => readTextBounded(big, 'VOC annotation', READ_LIMITS.annotation)).to.throw(UserError, /^VOC annotation .*huge\.xml is 16 MiB, more than the 16 MiB a VOC annotation may have$/);
    fs.truncateSync(big, 100);
    expect(readTextBounded(big, 'VOC annotation', READ_LIMITS.annotation)).to.have.length(100);
  });

  it('CUB images.txt paths that leave the images folder are refused like model weight paths', async () => {
    for (const [rel, why] of [['../../../etc/passwd', /points outside the images folder/], ['/etc/passwd', /is absolute/]] as const) {
      const root = path.join(tmp, `cub-${why.source.length}`);
      fs.mkdirSync(path.join(root, 'images'), { recursive: true });
      fs.writeFileSync(path.join(root, 'classes.txt'), '1 a\n2 b\n');
      fs.writeFileSync(path.join(root, 'images.txt'), `1 ${rel}\n`);
      fs.writeFileSync(path.join(root, 'image_class_labels.txt'), '1 1\n');
      fs.writeFileSync(path.join(root, 'train_test_split.txt'), '1 1\n');
      const err = await rejection(loadDataset(root, { skipBadImages: true }));
      expect(err).to.be.instanceOf(UserError);
      expect(err.message).to.match(new RegExp(`images\\.txt line 1: image path '${rel.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}' ${why.source}`));
    }
  });

  describe('images', () => {
    let model: string;
    before(async () => {
      await useEngine();
      model = await writeTinyModel(tmp);
    });

    it('cam shrinks an image larger than --overlay-size while decoding; boxes and sizes stay in its own pixels', async () => {
      const wide = path.join(tmp, 'wide.png');
      await sharp({ create: { width: 3000, height: 300, channels: 3, background: '#4a8' } }).png().toFile(wide);
      const small = path.join(tmp, 'cam-small');
      expect((await runMain(['cam', model, wide, '--overlay-size', '600', '--out', small])).code).to.equal(0);
      const json = JSON.parse(fs.readFileSync(path.join(small, 'cam.json'), 'utf8'));
      expect([json.images[0].width, json.images[0].height]).to.deep.equal([3000, 300]);
      const overlay = await sharp(path.join(small, json.images[0].methods.cam.overlays[0])).metadata();
      expect([overlay.width, overlay.height]).to.deep.equal([600, 60]);
      const original = await sharp(path.join(small, 'originals', 'wide.jpg')).metadata();
      expect([original.width, original.height]).to.deep.equal([600, 60]);
      // the default cap is 2048; images below it are drawn at their own size
      const dflt = path.join(tmp, 'cam-default');
      expect((await runMain(['cam', model, wide, '--out', dflt])).code).to.equal(0);
      expect((await sharp(path.join(dflt, 'originals', 'wide.jpg')).metadata()).width).to.equal(2048);
      expect(oneLine(await runMain(['cam', model, wide, '--overlay-size', '0', '--out', path.join(tmp, 'cam-bad')]))).to.match(/--overlay-size: expected a whole number of pixels ≥ 16, found 0/);
    });

    it('an image over the pixel limit is still a one-line error (no decoding attempted)', async () => {
      const huge = path.join(tmp, 'huge.png');
      fs.writeFileSync(huge, await pngClaiming(20000, 20000));
      const r = await runMain(['cam', model, huge, '--out', path.join(tmp, 'cam-huge')]);
      expect(oneLine(r)).to.match(/cannot decode image .*huge\.png: Input image exceeds pixel limit/);
    });
  });
});
