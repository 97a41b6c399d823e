import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import { useEngine, makeTempDir } from '../helpers.js';
import { checkDataset } from '../../src/data/check.js';
import { loadDataset } from '../../src/data/datasets.js';
import type { Dataset } from '../../src/data/types.js';
import { projectRoot } from '../../src/paths.js';

describe('data/check: datasets check', () => {
  before(useEngine);
  let savedCache: string | undefined;
  before(() => { savedCache = process.env.GAPCAM_CACHE_DIR; process.env.GAPCAM_CACHE_DIR = makeTempDir(); });
  after(() => { if (savedCache === undefined) delete process.env.GAPCAM_CACHE_DIR; else process.env.GAPCAM_CACHE_DIR = savedCache; });

  it('decodes every image and reports truncated files, bad boxes, size mismatches and out-of-range classes', async () => {
    const root = makeTempDir();
    const good = path.join(root, 'good.jpg'), trunc = path.join(root, 'trunc.jpg');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 10, g: 200, b: 30 } } }).jpeg().toFile(good);
    const noise = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 97) % 251);
    const tmp = path.join(root, 'tmp.jpg');
    await sharp(Buffer.from(noise), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toFile(tmp);
    const bytes = fs.readFileSync(tmp);
    fs.writeFileSync(trunc, bytes.subarray(0, bytes.length >> 1));
    const ds: Dataset = {
      name: 'mini', root, classNames: ['a', 'b'],
      records: [
        { id: '1', path: good, label: 0, width: 64, height: 48, boxes: [[0, 0, 63, 47]], split: 'train' },
        { id: '2', path: trunc, label: 1, width: 64, height: 64, boxes: [], split: 'train' },
        { id: '3', path: good, label: 2, width: 64, height: 48, boxes: [[60, 40, 70, 47]], split: 'train' },
        { id: '4', path: good, label: 1, width: 60, height: 48, boxes: [], split: 'test' },
      ],
    };
    const report = await checkDataset(ds);
    expect(report.images).to.equal(4);
    expect(report.decoded).to.equal(3);
    const text = report.problems.map((p) => `${path.basename(p.file)}: ${p.problem}`);
    expect(text.some((t) => t.startsWith('trunc.jpg') && t.includes('truncated')), text.join(' / ')).to.equal(true);
    expect(text.some((t) => t.includes('class id 2 out of range'))).to.equal(true);
    expect(text.some((t) => t.includes('outside'))).to.equal(true);
    expect(text.some((t) => t.includes('differs from the recorded 60×48'))).to.equal(true);
    expect(text.some((t) => t.includes('listed twice'))).to.equal(true);
  });

  it('gapcam datasets check prints a summary and the problems (exit code 1 when there are any)', async () => {
    const root = makeTempDir();
    await sharp({ create: { width: 20, height: 10, channels: 3, background: '#888' } }).png().toFile(path.join(root, 'a.png'));
    fs.writeFileSync(path.join(root, 'b.png'), 'not a png');
    fs.writeFileSync(path.join(root, 'list.csv'), 'path,label,split\na.png,cat,train\nb.png,dog,test\n');
    const ds = await loadDataset(path.join(root, 'list.csv'), { skipBadImages: true, minClasses: 1 });
    expect(ds.records).to.have.length(1);
    let out = '', code = 0;
    try {
      out = execFileSync(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'cli.ts'), 'datasets', 'check', path.join(root, 'list.csv'), '--backend', 'cpu'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env } });
    } catch (e) {
      const err = e as { status: number; stdout: string };
      code = err.status;
      out = err.stdout;
    }
    expect(code).to.equal(1);
    expect(out).to.include('1 images, 2 classes');
    expect(out).to.include('b.png');
    expect(out).to.include('the test split is empty');
  });
});
