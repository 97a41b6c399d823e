import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { useEngine, makeTempDir } from '../helpers.js';
import { buildEmbeddedDataset, ensureEmbeddedDataset, embeddedDatasetPresent, DEFAULT_EMBEDDED_PARAMS, type EmbeddedParams } from '../../src/data/embedded.js';
import { loadDataset, DEFAULT_DATASET } from '../../src/data/datasets.js';
import { loadCub } from '../../src/data/adapters/cub.js';
import { splitCounts } from '../../src/data/split.js';
import { decodeImage } from '../../src/data/image.js';

function treeHash(dir: string): string {
  const h = crypto.createHash('sha1');
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else h.update(path.relative(dir, p)).update(fs.readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

describe('data/embedded: digits-loc', () => {
  before(useEngine);
  const small: EmbeddedParams = { ...DEFAULT_EMBEDDED_PARAMS, trainPerClass: 3, testPerClass: 2 };

  it('is deterministic from its seed, and a different seed gives different images', async () => {
    const a = makeTempDir(), b = makeTempDir(), c = makeTempDir();
    await buildEmbeddedDataset(a, small);
    await buildEmbeddedDataset(b, small);
    await buildEmbeddedDataset(c, { ...small, seed: 'other' });
    const ha = treeHash(path.join(a, 'digits-loc')), hb = treeHash(path.join(b, 'digits-loc')), hc = treeHash(path.join(c, 'digits-loc'));
    expect(ha).to.equal(hb);
    expect(ha).to.not.equal(hc);
    // the build is atomic: no temporary folders are left behind
    expect(fs.readdirSync(a)).to.deep.equal(['digits-loc']);
  });

  it('is the default dataset, built on first use in the CUB layout with exact boxes on the digit ink', async function () {
    const root = makeTempDir();
    expect(DEFAULT_DATASET).to.equal('digits-loc');
    expect(embeddedDatasetPresent(root)).to.equal(false);
    const ds = await loadDataset(undefined, { dataRoot: root });
    expect(embeddedDatasetPresent(root)).to.equal(true);
    expect(ds.name).to.equal('digits-loc');
    expect(ds.classNames).to.have.length(10);
    expect(splitCounts(ds)).to.deep.equal({ train: 2000, test: 600 });
    // the CUB adapter reads it directly too
    const cub = await loadCub(path.join(root, 'digits-loc', 'CUB_200_2011'));
    expect(cub.records).to.have.length(2600);
    for (let k = 0; k < 10; k++) expect(ds.records.filter((r) => r.label === k && r.split === 'test')).to.have.length(60);
    // boxes are inside the 96×96 canvas, and the digit ink inside its box is brighter than the background outside
    let inside = 0, outside = 0, nIn = 0, nOut = 0;
    for (const r of ds.records.slice(0, 20)) {
      expect([r.width, r.height]).to.deep.equal([96, 96]);
      expect(r.boxes).to.have.length(1);
      const [x0, y0, x1, y1] = r.boxes[0];
      expect(x0 >= 0 && y0 >= 0 && x1 <= 95 && y1 <= 95 && x1 - x0 >= 3 && y1 - y0 >= 10, r.id).to.equal(true);
      const img = await decodeImage(r.path);
      for (let y = 0; y < 96; y++) for (let x = 0; x < 96; x++) {
        const v = Math.max(img.data[(y * 96 + x) * 3], img.data[(y * 96 + x) * 3 + 1], img.data[(y * 96 + x) * 3 + 2]);
        if (x >= x0 && x <= x1 && y >= y0 && y <= y1) { inside += v; nIn++; } else { outside += v; nOut++; }
      }
    }
    expect(inside / nIn).to.be.greaterThan(1.5 * (outside / nOut));
    // a second call finds it and does not rebuild
    const mtime = fs.statSync(path.join(root, 'digits-loc', 'CUB_200_2011', 'images.txt')).mtimeMs;
    await ensureEmbeddedDataset(root);
    expect(fs.statSync(path.join(root, 'digits-loc', 'CUB_200_2011', 'images.txt')).mtimeMs).to.equal(mtime);
  });
});
