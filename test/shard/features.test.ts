// Sharded `gapcam features`: 1 process vs 3 shards + merge give the same features.npy (1e-6 relative), index.csv and
// crops.csv; refusals (missing, duplicate, mismatched fingerprint, crashed shard) are one-line user errors.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { darknetTinyDir, makeTempDir, sharedDatasetsDir, useEngine } from '../helpers.js';
import { runFeatures, type RunFeaturesOptions } from '../../src/features/service.js';
import { mergeParts } from '../../src/shard/merge.js';
import { readNpy } from '../../src/util/npy.js';
import { UserError } from '../../src/errors.js';
import type { ShardSpec } from '../../src/shard/spec.js';
import { saveCamModel } from '../../src/models/meta.js';
import { buildEmbeddedDataset, DEFAULT_EMBEDDED_PARAMS, DIGIT_CLASS_NAMES } from '../../src/data/embedded.js';
import { tinyGapDense } from '../cam/tiny-models.js';

const shard = (index: number, count = 3): ShardSpec => ({ index, count, source: '--shard' });

/** Equal to `rel` relative to each feature vector's scale (its largest |value|): a GAP average near zero is a
 *  cancellation whose last bits move with the batch's composition (measured: 2e-6 absolute on 0.0132 in a row whose
 *  largest value is 18.8), so an element-wise relative test would measure round-off, not agreement. */
function expectClose(a: Float32Array, b: Float32Array, dimension: number, rel = 1e-6): void {
  expect(a.length).to.equal(b.length);
  let worst = 0;
  for (let r = 0; r < a.length / dimension; r++) {
    let scale = 0;
    let diff = 0;
    for (let j = r * dimension; j < (r + 1) * dimension; j++) {
      scale = Math.max(scale, Math.abs(a[j]));
      diff = Math.max(diff, Math.abs(a[j] - b[j]));
    }
    worst = Math.max(worst, diff / Math.max(scale, 1e-30));
  }
  expect(worst, 'largest difference relative to its row').to.be.at.most(rel);
}

const read = (dir: string, file: string): string => fs.readFileSync(path.join(dir, file), 'utf8');

/** Runs features once unsharded and as 3 shards + merge; checks the outputs agree; returns the sharded folder. */
async function compareShardedRun(options: Omit<RunFeaturesOptions, 'out' | 'shard'>, root: string, batchSizes: { whole: number; shards: number }): Promise<{ whole: string; sharded: string }> {
  const whole = path.join(root, 'whole');
  const sharded = path.join(root, 'sharded');
  await runFeatures({ ...options, out: whole, batchSize: batchSizes.whole });
  for (const i of [2, 0, 1]) await runFeatures({ ...options, out: sharded, shard: shard(i), batchSize: batchSizes.shards });
  expect(fs.readdirSync(sharded).sort()).to.deep.equal(['shard-0-of-3', 'shard-1-of-3', 'shard-2-of-3']);
  const merged = await mergeParts([sharded]);
  expect(merged.out).to.equal(path.resolve(sharded));
  const a = readNpy(path.join(whole, 'features.npy'));
  const b = readNpy(path.join(sharded, 'features.npy'));
  expect(b.shape).to.deep.equal(a.shape);
  expectClose(a.data as Float32Array, b.data as Float32Array, a.shape[1]);
  expect(read(sharded, 'index.csv')).to.equal(read(whole, 'index.csv'));
  const ma = JSON.parse(read(whole, 'features.json'));
  const mb = JSON.parse(read(sharded, 'features.json'));
  for (const m of [ma, mb]) for (const k of ['createdAt', 'seconds', 'imagesPerSecond']) delete m[k];
  expect(mb).to.deep.equal(ma);
  return { whole, sharded };
}

describe('shard: features as 1 process and as 3 shards + merge', function () {
  before(useEngine);

  it('darknet-tiny on a subset of wild2: byte-identical features.npy where batches align, the same index.csv', async () => {
    const root = makeTempDir();
    // 12 images, shards of 4, batches of 4 in both runs: every image sees the same batch
    const { whole, sharded } = await compareShardedRun({ checkpoint: darknetTinyDir, dataset: 'wild2', dataRoot: sharedDatasetsDir, split: 'test', limit: 12 }, root, { whole: 4, shards: 4 });
    expect(fs.readFileSync(path.join(sharded, 'features.npy')).equals(fs.readFileSync(path.join(whole, 'features.npy')))).to.equal(true);
    const part = JSON.parse(read(path.join(sharded, 'shard-1-of-3'), 'part.json'));
    expect(part.kind).to.equal('features');
    expect(part.images).to.include({ total: 12, start: 4, end: 8, count: 4 });
    expect(Object.keys(part.files)).to.deep.equal(['features.npy', 'index.csv', 'features.json']);
    expect(part.fingerprint.model).to.match(/^[0-9a-f]{32}$/);
  });

  describe('a tiny seeded model on digits-loc (CAM crops)', () => {
    let root: string;
    let modelDir: string;
    let options: Omit<RunFeaturesOptions, 'out' | 'shard'>;
    let sharded: string;

    before(async () => {
      root = makeTempDir();
      await buildEmbeddedDataset(path.join(root, 'data'), { ...DEFAULT_EMBEDDED_PARAMS, trainPerClass: 1, testPerClass: 1 });
      modelDir = path.join(root, 'model');
      const cam = tinyGapDense({ size: 32, classes: 10, seed: 3 });
      cam.meta.classNames = DIGIT_CLASS_NAMES.slice();
      await saveCamModel(modelDir, cam);
      cam.model.dispose();
      options = { checkpoint: modelDir, dataset: path.join(root, 'data', 'digits-loc'), split: 'all', crop: 'cam' };
    });

    it('the same features.npy, index.csv and crops.csv', async () => {
      // 20 images as 6 + 7 + 7 with batches of 4, against batches of 5: compositions differ
      ({ sharded } = await compareShardedRun(options, root, { whole: 5, shards: 4 }));
      expect(read(sharded, 'crops.csv')).to.equal(read(path.join(root, 'whole'), 'crops.csv'));
    });

    it('refuses a missing shard, naming it', async () => {
      const copy = path.join(root, 'missing');
      fs.cpSync(sharded, copy, { recursive: true });
      fs.rmSync(path.join(copy, 'shard-1-of-3'), { recursive: true });
      // a crashed shard leaves only its dot-named temporary folder: not a part
      fs.mkdirSync(path.join(copy, '.shard-1-of-3.tmp-123-456'));
      fs.writeFileSync(path.join(copy, '.shard-1-of-3.tmp-123-456', 'features.npy'), 'half');
      await expectUserError(mergeParts([copy]), /^merge: shard 1 of 3 is missing/);
    });

    it('refuses a shard given twice', async () => {
      const other = path.join(root, 'elsewhere');
      fs.cpSync(path.join(sharded, 'shard-0-of-3'), path.join(other, 'shard-0-of-3'), { recursive: true });
      await expectUserError(mergeParts([sharded, path.join(other, 'shard-0-of-3')]), /^merge: shard 0 of 3 given twice: /);
    });

    it('refuses parts made with different options or models, naming which', async () => {
      const odd = path.join(root, 'odd-options');
      await runFeatures({ ...options, camThreshold: 0.3, out: odd, shard: shard(1) });
      await expectUserError(mergeParts([path.join(sharded, 'shard-0-of-3'), path.join(odd, 'shard-1-of-3'), path.join(sharded, 'shard-2-of-3')], { out: path.join(root, 'm1') }),
        /^merge: .*shard-0-of-3 and .*odd-options.shard-1-of-3 were made with different options \(options fingerprint/);
      const otherModel = path.join(root, 'model2');
      const cam = tinyGapDense({ size: 32, classes: 10, seed: 4 });
      cam.meta.classNames = DIGIT_CLASS_NAMES.slice();
      await saveCamModel(otherModel, cam);
      cam.model.dispose();
      const odd2 = path.join(root, 'odd-model');
      await runFeatures({ ...options, checkpoint: otherModel, out: odd2, shard: shard(2) });
      await expectUserError(mergeParts([path.join(sharded, 'shard-0-of-3'), path.join(sharded, 'shard-1-of-3'), path.join(odd2, 'shard-2-of-3')], { out: path.join(root, 'm2') }),
        /different models \(model fingerprint/);
    });

    it('refuses an incomplete or damaged part; a re-run shard replaces only its own part', async () => {
      const copy = path.join(root, 'crashed');
      fs.cpSync(sharded, copy, { recursive: true });
      fs.rmSync(path.join(copy, 'shard-2-of-3', 'part.json'));
      await expectUserError(mergeParts([copy]), /shard-2-of-3: not a complete part \(no part\.json/);
      // re-run shard 2 (--force): its part is replaced, the others are untouched
      const before = ['shard-0-of-3', 'shard-1-of-3'].map((p) => read(path.join(copy, p), 'part.json'));
      const r = await runFeatures({ ...options, out: copy, shard: shard(2), force: true });
      expect(r.reused).to.equal(false);
      expect(['shard-0-of-3', 'shard-1-of-3'].map((p) => read(path.join(copy, p), 'part.json'))).to.deep.equal(before);
      expect(fs.readdirSync(copy).filter((f) => f.startsWith('.') || f.endsWith('.old'))).to.deep.equal([]);
      await mergeParts([copy]);
      expect(read(copy, 'index.csv')).to.equal(read(sharded, 'index.csv'));
      // without --force, a complete part with the same fingerprint is reused
      expect((await runFeatures({ ...options, out: copy, shard: shard(2) })).reused).to.equal(true);
      // a data file that no longer matches part.json
      fs.appendFileSync(path.join(copy, 'shard-0-of-3', 'index.csv'), 'x');
      await expectUserError(mergeParts([copy]), /shard-0-of-3.index\.csv: part file has \d+ bytes, part\.json says \d+/);
    });
  });
});

async function expectUserError(p: Promise<unknown>, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(message);
    expect((err as Error).message).to.not.include('\n');
    return;
  }
  expect.fail(`expected a UserError matching ${message}`);
}
