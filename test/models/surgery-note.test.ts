// `gapcam model surgery` says that what it wrote is untrained: the new head always, the whole model when the
// backbone was built without weights.
import { expect } from 'chai';
import path from 'node:path';
import { makeTempDir, useEngine, darknetTinyDir } from '../helpers.js';
import { runSurgery } from '../../src/models/service.js';
import { runMain } from '../engine/run-cli.js';

describe('models: surgery says what is random', function () {
  this.timeout(120_000);
  before(useEngine);

  it('a backbone built without weights: randomBackbone, and the CLI says the weights are random', async () => {
    const out = path.join(makeTempDir(), 'm');
    const r = await runSurgery({ model: 'vgg-tiny', backbone: { inputShape: [32, 32, 3] }, classes: 3, convFilters: 8, seed: 2, out });
    expect(r.randomBackbone).to.equal(true);
    const cli = await runMain(['model', 'surgery', 'vgg-tiny', '--classes', '3', '--conv-filters', '8', '--out', path.join(makeTempDir(), 'm2')]);
    expect(cli.code, cli.stderr).to.equal(0);
    expect(cli.stdout).to.match(/note: the weights are random — vgg-tiny was built without weights/);
  });

  it('a trained model folder: only the new head is random', async () => {
    const r = await runSurgery({ model: darknetTinyDir, cutAt: 'leaky_re_lu_15', classes: 'kangaroo,raccoon', convFilters: 8, seed: 4, out: path.join(makeTempDir(), 'd') });
    expect(r.randomBackbone).to.equal(false);
  });
});
