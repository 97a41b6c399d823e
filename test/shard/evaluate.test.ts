// Sharded `gapcam evaluate`: 1 process vs 3 shards + merge give identical metrics (recomputed from the summed
// counts), an identical per-image.csv (content and order), confusion.csv and evaluation.md.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { darknetTinyDir, makeTempDir, sharedDatasetsDir, useEngine } from '../helpers.js';
import { evaluate, type EvaluateOptions } from '../../src/eval/evaluate.js';
import { mergeParts } from '../../src/shard/merge.js';
import { UserError } from '../../src/errors.js';
import type { ShardSpec } from '../../src/shard/spec.js';
import { saveCamModel } from '../../src/models/meta.js';
import { buildEmbeddedDataset, DEFAULT_EMBEDDED_PARAMS, DIGIT_CLASS_NAMES } from '../../src/data/embedded.js';
import { tinyGapDense } from '../cam/tiny-models.js';
import { loadDataset } from '../../src/data/datasets.js';

const shard = (index: number, count = 3): ShardSpec => ({ index, count, source: '--shard' });
const read = (dir: string, file: string): string => fs.readFileSync(path.join(dir, file), 'utf8');

/** Evaluates unsharded and as 3 shards + merge; checks every output agrees; returns both folders. */
async function compareShardedEvaluation(options: Omit<EvaluateOptions, 'out' | 'shard'>, root: string): Promise<{ whole: string; sharded: string }> {
  const whole = path.join(root, 'whole');
  const sharded = path.join(root, 'sharded');
  await evaluate({ ...options, out: whole });
  for (const i of [1, 2, 0]) {
    const run = await evaluate({ ...options, out: sharded, shard: shard(i) });
    expect(run.part).to.equal(path.join(sharded, `shard-${i}-of-3`));
  }
  const merged = await mergeParts([sharded]);
  expect(merged.kind).to.equal('evaluation');
  const a = JSON.parse(read(whole, 'evaluation.json'));
  const b = JSON.parse(read(sharded, 'evaluation.json'));
  expect(b.metrics).to.deep.equal(a.metrics);
  for (const r of [a, b]) for (const k of ['createdAt', 'seconds']) delete r[k];
  expect(b).to.deep.equal(a);
  for (const f of ['per-image.csv', 'confusion.csv', 'evaluation.md']) expect(read(sharded, f), f).to.equal(read(whole, f));
  return { whole, sharded };
}

describe('shard: evaluate as 1 process and as 3 shards + merge', function () {
  before(useEngine);

  it('darknet-tiny on a subset of wild2 (1000 classes, class map): identical metrics and per-image CSV', async () => {
    const root = makeTempDir();
    // 12 images in shards of 4, batches of 4 in both runs: every image sees the same batch
    const { whole } = await compareShardedEvaluation({
      checkpoint: darknetTinyDir, dataset: 'wild2', dataRoot: sharedDatasetsDir, split: 'test', limit: 12, batchSize: 4,
      classMap: 'kangaroo=wallaby,raccoon=lesser panda',
    }, root);
    const report = JSON.parse(read(whole, 'evaluation.json'));
    expect(report.metrics.images).to.equal(12);
    expect(report.metrics.localization.maxBoxAccV2.perIou).to.have.length(3);
    const part = JSON.parse(read(path.join(root, 'sharded', 'shard-2-of-3'), 'part.json'));
    expect(part).to.deep.include({ kind: 'evaluation' });
    expect(part.images).to.include({ total: 12, start: 8, end: 12, count: 4 });
  });

  describe('a tiny seeded model on digits-loc', () => {
    let root: string;
    let options: Omit<EvaluateOptions, 'out' | 'shard'>;

    before(async () => {
      root = makeTempDir();
      await buildEmbeddedDataset(path.join(root, 'data'), { ...DEFAULT_EMBEDDED_PARAMS, trainPerClass: 1, testPerClass: 2 });
      const cam = tinyGapDense({ size: 32, classes: 10, seed: 3 });
      // the dataset read from its folder names its classes as CUB does (001.zero …)
      cam.meta.classNames = (await loadDataset(path.join(root, 'data', 'digits-loc'))).classNames;
      expect(cam.meta.classNames).to.have.length(DIGIT_CLASS_NAMES.length);
      await saveCamModel(path.join(root, 'model'), cam);
      cam.model.dispose();
      // 18 test images: shards of 6, batches of 3 everywhere
      options = { checkpoint: path.join(root, 'model'), dataset: path.join(root, 'data', 'digits-loc'), split: 'test', limit: 18, batchSize: 3, settings: { boxes: 'all', thresholding: 'float' } };
    });

    it('identical metrics (the MaxBoxAcc curves too), per-image CSV and confusion matrix', async () => {
      const { whole } = await compareShardedEvaluation(options, root);
      const m = JSON.parse(read(whole, 'evaluation.json')).metrics;
      expect(m.images).to.equal(18);
      expect(m.classification.confusion).to.have.length(10);
    });

    it('the wsolevaluation protocol merges to the same metrics too', async () => {
      const sub = path.join(root, 'wsol');
      fs.mkdirSync(sub);
      const { whole } = await compareShardedEvaluation({ ...options, settings: { protocol: 'wsolevaluation' } }, sub);
      expect(JSON.parse(read(whole, 'evaluation.json')).settings.protocol).to.equal('wsolevaluation');
    });

    it('refuses parts evaluated with different settings', async () => {
      const odd = path.join(root, 'odd');
      await evaluate({ ...options, settings: { ...options.settings, camThreshold: 0.3 }, out: odd, shard: shard(1) });
      const parts = [path.join(root, 'sharded', 'shard-0-of-3'), path.join(odd, 'shard-1-of-3'), path.join(root, 'sharded', 'shard-2-of-3')];
      try {
        await mergeParts(parts, { out: path.join(root, 'm') });
        expect.fail('merged parts made with different settings');
      } catch (err) {
        expect(err).to.be.instanceOf(UserError);
        expect((err as Error).message).to.match(/^merge: .*shard-0-of-3 and .*odd.shard-1-of-3 were made with different options/);
      }
      // the same settings with another batch size merge (batch size is not a result-changing option)
      await evaluate({ ...options, batchSize: 6, out: odd, shard: shard(1) });
      await mergeParts(parts, { out: path.join(root, 'm') });
      expect(read(path.join(root, 'm'), 'per-image.csv')).to.equal(read(path.join(root, 'whole'), 'per-image.csv'));
    });
  });
});
