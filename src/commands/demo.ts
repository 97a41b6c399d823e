import type { Args, GapcamCommand } from './common.js';
import { startCommandEngine, checkpointRootOf } from './common.js';
import { interruptOnSignals, stopMessage } from '../train/signals.js';
import { printSummary } from './train.js';

const DEMO_RECIPE = 'vgg-gap-tiny';

interface DemoArgs {
  epochs?: number;
  runName?: string;
  checkpoints?: string;
}

export const demoCommand: GapcamCommand = {
  command: 'demo',
  describe: 'The whole toolkit in one go: build the embedded digits-loc set, train vgg-gap-tiny on it, evaluate classification and CAM localization, write CAM images',
  builder: (y) =>
    y
      .option('epochs', { type: 'number', describe: 'epochs (default: the vgg-gap-tiny recipe\'s)' })
      .option('run-name', { type: 'string', describe: 'run folder name (default demo-<date>-<time>)' })
      .option('checkpoints', { type: 'string', describe: 'folder that holds the run folder (default checkpoints/); --out is not used by demo' })
      .example('$0 demo', 'what `npm start` runs: a few minutes on a 2-core CPU')
      .example('$0 demo --epochs 2 --checkpoints /tmp/gapcam', 'a shorter run, written elsewhere'),
  handler: async (argv) => {
    const args = argv as Args<DemoArgs>;
    const checkpointRoot = checkpointRootOf(args);
    const overrides = { epochs: args.epochs, seed: args.seed };
    (await import('../recipes/loader.js')).loadRecipe(DEMO_RECIPE, overrides); // bad flag values fail before the engine starts
    const [{ trainAndEvaluate }, { consoleProgress, describeEngineShort }] = await Promise.all([import('../train/run.js'), import('../train/progress.js')]);
    const engine = await startCommandEngine(args);
    const progress = consoleProgress();
    const intr = interruptOnSignals((sig) => progress.log(stopMessage(sig)));
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    progress.log('gapcam demo: training vgg-gap-tiny on the embedded digits-loc dataset (built on first use), then evaluating it');
    try {
      const res = await trainAndEvaluate({
        recipe: DEMO_RECIPE, overrides, dataRoot: args.dataRoot, checkpointRoot,
        runName: args.runName ?? `demo-${stamp}`, signal: intr.signal, progress, engine: describeEngineShort(engine),
      });
      if (res.train.status === 'interrupted') {
        console.log(`interrupted at step ${res.train.globalStep}; resume with: gapcam train --resume ${res.train.runName}\nrun folder: ${res.train.runDir}`);
        process.exitCode = intr.exitCode();
        return;
      }
      printSummary(res);
    } finally {
      intr.dispose();
    }
  },
};
